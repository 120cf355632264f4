-- Point transfers' objects, for the install script and the 1.3 -> 1.4 upgrade.

CREATE TABLE loyalty.transfer_rules (
    program_id              bigint PRIMARY KEY REFERENCES loyalty.programs,
    enabled                 boolean NOT NULL DEFAULT true,
    min_points              bigint NOT NULL DEFAULT 1 CHECK (min_points > 0),
    max_points              bigint CHECK (max_points >= min_points),
    min_tenure              interval NOT NULL DEFAULT '0' CHECK (min_tenure >= '0'),
    min_tier_rank           integer CHECK (min_tier_rank >= 0),
    sender_daily_points     bigint CHECK (sender_daily_points > 0),
    sender_monthly_points   bigint CHECK (sender_monthly_points > 0),
    sender_daily_count      integer CHECK (sender_daily_count > 0),
    receiver_daily_points   bigint CHECK (receiver_daily_points > 0),
    receiver_monthly_points bigint CHECK (receiver_monthly_points > 0),
    same_household          boolean NOT NULL DEFAULT false,
    updated_at              timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE loyalty.transfer_rules IS
    'Whether members of a program may give each other points, and the bounds: per transfer, sender tenure and tier, points and count per day and month (days and months in the program time zone), within a household only';

#include "udfs/set_transfer_rules/1.4.sql"
COMMENT ON FUNCTION loyalty.set_transfer_rules(bigint, boolean, numeric, numeric, interval, integer, bigint, bigint, integer, bigint, bigint, boolean) IS
    'Enable or disable point transfers in a program and set their limits (NULL: no limit)';

#include "udfs/transfer/1.4.sql"
COMMENT ON FUNCTION loyalty.transfer(bigint, bigint, numeric, text, text) IS
    'Give points to another member of the program: the sender''s lots first-to-expire-first, the receiver''s new lots keep their expiry dates; refused by the program''s rules (LY040) and limits (LY041); returns the sender''s entry';

#include "udfs/reverse_transfer/1.4.sql"
COMMENT ON FUNCTION loyalty.reverse_transfer(bigint, bigint, text, text) IS
    'Undo a transfer (administrators): the receiver gives the points back (what it spent follows the refund policy), the sender gets them back in the lots they came from; returns the points';

#include "udfs/transfers/1.4.sql"
COMMENT ON VIEW loyalty.transfers IS 'Point transfers between members, with their reversal';
COMMENT ON COLUMN loyalty.transfers.program_id IS 'Program';
COMMENT ON COLUMN loyalty.transfers.transfer_id IS 'The sender''s ledger entry (what loyalty.transfer returned)';
COMMENT ON COLUMN loyalty.transfers.from_member IS 'Sender';
COMMENT ON COLUMN loyalty.transfers.to_member IS 'Receiver';
COMMENT ON COLUMN loyalty.transfers.points IS 'Points transferred';
COMMENT ON COLUMN loyalty.transfers.reason IS 'Reason given with the transfer';
COMMENT ON COLUMN loyalty.transfers.actor IS 'Database role that made the transfer';
COMMENT ON COLUMN loyalty.transfers.created_at IS 'When the transfer was recorded';
COMMENT ON COLUMN loyalty.transfers.reversed IS 'Whether an administrator reversed it';
COMMENT ON COLUMN loyalty.transfers.reversed_at IS 'When it was reversed';
COMMENT ON COLUMN loyalty.transfers.reversal_reason IS 'Reason given with the reversal';

SELECT pg_catalog.pg_extension_config_dump('loyalty.transfer_rules', '');

REVOKE ALL ON FUNCTION loyalty.set_transfer_rules(bigint, boolean, numeric, numeric, interval, integer, bigint, bigint, integer, bigint, bigint, boolean),
    loyalty.transfer(bigint, bigint, numeric, text, text),
    loyalty.reverse_transfer(bigint, bigint, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.transfer(bigint, bigint, numeric, text, text) TO loyalty_app, loyalty_admin;
GRANT EXECUTE ON FUNCTION loyalty.set_transfer_rules(bigint, boolean, numeric, numeric, interval, integer, bigint, bigint, integer, bigint, bigint, boolean),
    loyalty.reverse_transfer(bigint, bigint, text, text) TO loyalty_admin;
GRANT SELECT ON loyalty.transfers TO loyalty_analyst, loyalty_admin;
