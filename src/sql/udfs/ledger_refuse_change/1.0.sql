CREATE FUNCTION loyalty.ledger_refuse_change() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'the loyalty ledger is append-only'
        USING ERRCODE = 'insufficient_privilege',
              DETAIL = format('%s on loyalty.ledger is refused.', TG_OP),
              HINT = 'Correct an entry with a new one: loyalty.reverse() or loyalty.adjust().';
END $$;
