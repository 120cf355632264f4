/*
 * tier.c
 *		The tier type: text form RANK:NAME, ordered by rank then name.
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "fmgr.h"
#include "libpq/pqformat.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

#include "loyalty.h"
#include "tier.h"

PG_FUNCTION_INFO_V1(tier_in);
PG_FUNCTION_INFO_V1(tier_out);
PG_FUNCTION_INFO_V1(tier_recv);
PG_FUNCTION_INFO_V1(tier_send);
PG_FUNCTION_INFO_V1(tier_make);
PG_FUNCTION_INFO_V1(tier_rank);
PG_FUNCTION_INFO_V1(tier_name);
PG_FUNCTION_INFO_V1(tier_lt);
PG_FUNCTION_INFO_V1(tier_le);
PG_FUNCTION_INFO_V1(tier_eq);
PG_FUNCTION_INFO_V1(tier_ne);
PG_FUNCTION_INFO_V1(tier_ge);
PG_FUNCTION_INFO_V1(tier_gt);
PG_FUNCTION_INFO_V1(tier_cmp);
PG_FUNCTION_INFO_V1(tier_smaller);
PG_FUNCTION_INFO_V1(tier_larger);
PG_FUNCTION_INFO_V1(tier_hash);
PG_FUNCTION_INFO_V1(tier_hash_extended);

/* Raise 22P02 for a malformed tier, saying what is wrong. */
static void
BadTier(const char *input, const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid input syntax for type tier: \"%s\"", input),
			 errdetail("%s", why),
			 errhint("Write a tier as RANK:NAME, e.g. '2:Gold'.")));
}

/* Check a tier name (length, white space, control characters, encoding). */
static void
CheckName(const char *input, const char *name, int len)
{
	int			i;

	if (len == 0)
		BadTier(input, "The name is empty.");
	if (len > TIER_MAX_NAME)
		BadTier(input, "The name is longer than 64 bytes.");
	if (name[0] == ' ' || name[0] == '\t' || name[len - 1] == ' ' || name[len - 1] == '\t')
		BadTier(input, "The name starts or ends with white space.");
	for (i = 0; i < len; i++)
		if ((unsigned char) name[i] < 0x20 || (unsigned char) name[i] == 0x7f)
			BadTier(input, "The name contains a control character.");
	pg_verifymbstr(name, len, false);
}

/* Check a rank's range (22003). */
static void
CheckRank(int64 rank)
{
	if (rank < 0 || rank > TIER_MAX_RANK)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("tier rank %lld is out of range", (long long) rank),
				 errdetail("A tier rank lies between 0 and %d.", TIER_MAX_RANK)));
}

/* Build a validated tier value. */
Tier *
make_tier(int32 rank, const char *name, int len)
{
	Tier	   *t;

	CheckRank(rank);
	CheckName(psprintf("%d:%.*s", rank, len, name), name, len);
	t = palloc(offsetof(Tier, name) + len);
	SET_VARSIZE(t, offsetof(Tier, name) + len);
	t->rank = rank;
	memcpy(t->name, name, len);
	return t;
}

/* Text input: decimal rank, a colon, the name (everything after it). */
Datum
tier_in(PG_FUNCTION_ARGS)
{
	const char *str = PG_GETARG_CSTRING(0);
	const char *p = str;
	int64		rank = 0;
	int			ndigits = 0;
	Tier	   *t;
	int			len;

	while (*p >= '0' && *p <= '9')
	{
		rank = rank * 10 + (*p - '0');
		if (rank > TIER_MAX_RANK)
			rank = TIER_MAX_RANK + 1;	/* saturate: reported below */
		ndigits++;
		p++;
	}
	if (ndigits == 0)
		BadTier(str, "A tier starts with its rank, a number from 0 to 32767.");
	if (*p != ':')
		BadTier(str, "The rank must be followed by a colon and the name.");
	p++;
	if (rank > TIER_MAX_RANK)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("tier rank is out of range in \"%s\"", str),
				 errdetail("A tier rank lies between 0 and %d.", TIER_MAX_RANK)));
	len = strlen(p);
	CheckName(str, p, len);
	t = palloc(offsetof(Tier, name) + len);
	SET_VARSIZE(t, offsetof(Tier, name) + len);
	t->rank = (int32) rank;
	memcpy(t->name, p, len);
	PG_RETURN_TIER_P(t);
}

/* Canonical text output: rank:name. */
Datum
tier_out(PG_FUNCTION_ARGS)
{
	Tier	   *t = PG_GETARG_TIER_P(0);

	PG_RETURN_CSTRING(psprintf("%d:%.*s", t->rank, (int) TIER_NAME_LEN(t), t->name));
}

/* Binary input: int4 rank then the name as text, re-validated. */
Datum
tier_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int32		rank = pq_getmsgint(buf, 4);
	int			len;
	char	   *name = pq_getmsgtext(buf, buf->len - buf->cursor, &len);

	PG_RETURN_TIER_P(make_tier(rank, name, len));
}

/* Binary output: int4 rank then the name as text. */
Datum
tier_send(PG_FUNCTION_ARGS)
{
	Tier	   *t = PG_GETARG_TIER_P(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendint32(&buf, t->rank);
	pq_sendtext(&buf, t->name, TIER_NAME_LEN(t));
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/* tier(rank, name): constructor with the same checks as input. */
Datum
tier_make(PG_FUNCTION_ARGS)
{
	int32		rank = PG_GETARG_INT32(0);
	text	   *name = PG_GETARG_TEXT_PP(1);

	PG_RETURN_TIER_P(make_tier(rank, VARDATA_ANY(name), VARSIZE_ANY_EXHDR(name)));
}

/* tier_rank(tier) */
Datum
tier_rank(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(PG_GETARG_TIER_P(0)->rank);
}

/* tier_name(tier) */
Datum
tier_name(PG_FUNCTION_ARGS)
{
	Tier	   *t = PG_GETARG_TIER_P(0);

	PG_RETURN_TEXT_P(cstring_to_text_with_len(t->name, TIER_NAME_LEN(t)));
}

/* The one ordering: rank, then name bytes, then name length. */
static int
tier_cmp_internal(Tier *a, Tier *b)
{
	int			la = TIER_NAME_LEN(a);
	int			lb = TIER_NAME_LEN(b);
	int			c;

	if (a->rank != b->rank)
		return a->rank < b->rank ? -1 : 1;
	c = memcmp(a->name, b->name, Min(la, lb));
	if (c != 0)
		return c < 0 ? -1 : 1;
	return la == lb ? 0 : (la < lb ? -1 : 1);
}

/* Compare two tier arguments, freeing detoasted copies. */
static int
TierCmpArgs(FunctionCallInfo fcinfo)
{
	Tier	   *a = PG_GETARG_TIER_P(0);
	Tier	   *b = PG_GETARG_TIER_P(1);
	int			c = tier_cmp_internal(a, b);

	PG_FREE_IF_COPY(a, 0);
	PG_FREE_IF_COPY(b, 1);
	return c;
}

/* tier < tier */
Datum
tier_lt(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(TierCmpArgs(fcinfo) < 0);
}

/* tier <= tier */
Datum
tier_le(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(TierCmpArgs(fcinfo) <= 0);
}

/* tier = tier */
Datum
tier_eq(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(TierCmpArgs(fcinfo) == 0);
}

/* tier <> tier */
Datum
tier_ne(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(TierCmpArgs(fcinfo) != 0);
}

/* tier >= tier */
Datum
tier_ge(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(TierCmpArgs(fcinfo) >= 0);
}

/* tier > tier */
Datum
tier_gt(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(TierCmpArgs(fcinfo) > 0);
}

/* btree support function */
Datum
tier_cmp(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(TierCmpArgs(fcinfo));
}

/* Transition and combine function of min(tier). */
Datum
tier_smaller(PG_FUNCTION_ARGS)
{
	Tier	   *a = PG_GETARG_TIER_P(0);
	Tier	   *b = PG_GETARG_TIER_P(1);

	PG_RETURN_TIER_P(tier_cmp_internal(a, b) <= 0 ? a : b);
}

/* Transition and combine function of max(tier). */
Datum
tier_larger(PG_FUNCTION_ARGS)
{
	Tier	   *a = PG_GETARG_TIER_P(0);
	Tier	   *b = PG_GETARG_TIER_P(1);

	PG_RETURN_TIER_P(tier_cmp_internal(a, b) >= 0 ? a : b);
}

/* Hash of rank and name; equal tiers hash equal. */
Datum
tier_hash(PG_FUNCTION_ARGS)
{
	Tier	   *t = PG_GETARG_TIER_P(0);
	uint32		h = hash_bytes((const unsigned char *) t->name, TIER_NAME_LEN(t));

	h = hash_combine(h, hash_bytes_uint32((uint32) t->rank));
	PG_FREE_IF_COPY(t, 0);
	PG_RETURN_UINT32(h);
}

/* 64-bit seeded hash for hash partitioning. */
Datum
tier_hash_extended(PG_FUNCTION_ARGS)
{
	Tier	   *t = PG_GETARG_TIER_P(0);
	uint64		seed = PG_GETARG_INT64(1);
	uint64		h = hash_bytes_extended((const unsigned char *) t->name, TIER_NAME_LEN(t), seed);

	h = hash_combine64(h, hash_bytes_uint32_extended((uint32) t->rank, seed));
	PG_FREE_IF_COPY(t, 0);
	PG_RETURN_UINT64(h);
}
