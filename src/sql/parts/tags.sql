-- Member tags' objects, for the install script and the 1.3 -> 1.4 upgrade.

-- what a tag (and a badge) may be, written once
#include "udfs/valid_tag/1.4.sql"
COMMENT ON FUNCTION loyalty.valid_tag(text) IS
    'Whether a text is a valid tag or badge: 1 to 63 lower-case letters, digits, and _ . : - (not first)';
REVOKE ALL ON FUNCTION loyalty.valid_tag(text) FROM PUBLIC;

CREATE TABLE loyalty.member_tags (
    member_id   bigint NOT NULL,
    tag         text NOT NULL CHECK (loyalty.valid_tag(tag)),
    program_id  bigint NOT NULL,
    tagged_at   timestamptz NOT NULL DEFAULT now(),
    tagged_by   text NOT NULL DEFAULT current_user,
    PRIMARY KEY (member_id, tag)
);
COMMENT ON TABLE loyalty.member_tags IS
    'Tags the application or the program''s rules put on members (lower case), for targeting: coupon campaigns can ask for one';
SELECT pg_catalog.pg_extension_config_dump('loyalty.member_tags', '');

#include "udfs/tag_member/1.4.sql"
COMMENT ON FUNCTION loyalty.tag_member(bigint, text) IS 'Tag a member (kept in lower case); returns whether the tag is new';
#include "udfs/untag_member/1.4.sql"
COMMENT ON FUNCTION loyalty.untag_member(bigint, text) IS 'Take a tag off a member; returns whether it had it';
REVOKE ALL ON FUNCTION loyalty.tag_member(bigint, text), loyalty.untag_member(bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.tag_member(bigint, text), loyalty.untag_member(bigint, text) TO loyalty_app, loyalty_admin;
