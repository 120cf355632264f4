CREATE FUNCTION loyalty.ledger_keep_entries()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'loyalty_ledger_keep_entries'
LANGUAGE C;
