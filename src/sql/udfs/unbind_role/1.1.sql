CREATE FUNCTION loyalty.unbind_role(program bigint, role_name name)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty.require_program(program);
    DELETE FROM loyalty.program_roles r
    WHERE r.program_id OPERATOR(pg_catalog.=) program AND r.role_name OPERATOR(pg_catalog.=) unbind_role.role_name;
    RETURN FOUND;
END $$;
