CREATE FUNCTION loyalty.challenge_move(member bigint, entry bigint, fact text, amount numeric,
                                       occurred_at timestamptz, channel text, lines jsonb, detail text)
RETURNS integer
AS 'MODULE_PATHNAME', 'loyalty_challenge_move'
LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
