CREATE FUNCTION loyalty.check_identity(channel text, external_id text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- blank in any whitespace, not only spaces
    IF pg_catalog.btrim(channel, E' \t\n\r\f\v') OPERATOR(pg_catalog.=) ''
       OR pg_catalog.btrim(external_id, E' \t\n\r\f\v') OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION 'channel and external_id must not be empty' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'A channel names where the member is known (pos, web, app...), the external id who they are there.';
    END IF;
    -- a clear limit, well under what the identities' index can hold
    IF pg_catalog.length(channel) OPERATOR(pg_catalog.>) 64 THEN
        RAISE EXCEPTION 'channel is % characters long; at most 64 are allowed', pg_catalog.length(channel)
            USING ERRCODE = 'string_data_right_truncation';
    END IF;
    IF pg_catalog.length(external_id) OPERATOR(pg_catalog.>) 256 THEN
        RAISE EXCEPTION 'external_id is % characters long; at most 256 are allowed', pg_catalog.length(external_id)
            USING ERRCODE = 'string_data_right_truncation',
            HINT = 'Use the channel''s own identifier (a card number, an account id, an e-mail address), or a hash of a longer one.';
    END IF;
END $$;
