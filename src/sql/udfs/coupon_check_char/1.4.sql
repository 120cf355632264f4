CREATE FUNCTION loyalty.coupon_check_char(body text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- Crockford's base 32: no I, L, O or U, which are read as 1, 1, 0 and V
    c_alphabet CONSTANT text := '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
    v_factor integer := 2;
    v_sum integer := 0;
    v_add integer;
BEGIN
    -- Luhn mod 32: one character of the same alphabet catches any single
    -- mistyped character and most swaps of two neighbours
    FOR i IN REVERSE length(body) .. 1 LOOP
        v_add := strpos(c_alphabet, substr(body, i, 1)) - 1;
        IF v_add < 0 THEN
            RAISE EXCEPTION 'a coupon code is written in the digits and capitals of Crockford''s base 32, not "%"',
                substr(body, i, 1) USING ERRCODE = 'invalid_parameter_value';
        END IF;
        v_add := v_add * v_factor;
        v_factor := 3 - v_factor;
        v_sum := v_sum + v_add / 32 + v_add % 32;
    END LOOP;
    RETURN substr(c_alphabet, (32 - v_sum % 32) % 32 + 1, 1);
END $$;
