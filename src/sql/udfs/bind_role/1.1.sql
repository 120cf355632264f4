CREATE FUNCTION loyalty.bind_role(program bigint, role_name name)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF program IS NULL OR role_name IS NULL THEN
        RAISE EXCEPTION 'program and role must not be null' USING ERRCODE = '22004';
    END IF;
    PERFORM loyalty.require_program(program);
    IF NOT EXISTS (SELECT FROM loyalty.programs p WHERE p.program_id OPERATOR(pg_catalog.=) program) THEN
        RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'P0002';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) bind_role.role_name) THEN
        RAISE EXCEPTION 'role "%" does not exist', role_name USING ERRCODE = '42704';
    END IF;
    INSERT INTO loyalty.program_roles (program_id, role_name) VALUES (program, bind_role.role_name)
    ON CONFLICT DO NOTHING;
END $$;
