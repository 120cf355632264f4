CREATE FUNCTION loyalty.define_tier(program bigint, rank integer, name text, threshold anycompatible,
    earn_multiplier anycompatible DEFAULT 1::numeric, invitation_only boolean DEFAULT false, benefits jsonb DEFAULT '{}')
RETURNS loyalty.tier
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_tier loyalty.tier;
    -- the threshold and multiplier as numeric, whatever a driver sent (ints,
    -- floats, decimals); NaN and infinities fail the table's checks
    v_threshold numeric := define_tier.threshold::numeric;
    v_multiplier numeric := define_tier.earn_multiplier::numeric;
BEGIN
    PERFORM loyalty.require_program(define_tier.program);
    IF program IS NULL OR rank IS NULL OR name IS NULL OR v_threshold IS NULL THEN
        RAISE EXCEPTION 'program, rank, name and threshold must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    v_tier := loyalty.tier(rank, name);       -- the tier type's own checks on rank and name
    BEGIN
        INSERT INTO loyalty.tiers (program_id, rank, name, threshold, earn_multiplier, invitation_only, benefits)
        VALUES (define_tier.program, define_tier.rank, define_tier.name, v_threshold,
                coalesce(v_multiplier, 1), coalesce(define_tier.invitation_only, false),
                coalesce(define_tier.benefits, '{}'))
        ON CONFLICT (program_id, rank) DO UPDATE SET name = EXCLUDED.name, threshold = EXCLUDED.threshold,
            earn_multiplier = EXCLUDED.earn_multiplier, invitation_only = EXCLUDED.invitation_only,
            benefits = EXCLUDED.benefits;
    EXCEPTION
        WHEN check_violation THEN
            RAISE EXCEPTION 'invalid tier %: %', v_tier, SQLERRM USING ERRCODE = 'invalid_parameter_value';
        WHEN foreign_key_violation THEN
            RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
        WHEN unique_violation THEN
            RAISE EXCEPTION 'program % already has a tier named "%"', program, name USING ERRCODE = 'unique_violation';
    END;
    RETURN v_tier;
END $$;
