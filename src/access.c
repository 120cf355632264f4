/*
 * access.c
 *		Multi-program isolation: a role bound to programs (rows of
 *		loyalty.program_roles, for it or a role it inherits from) may act on
 *		and see only those programs' members, ledger and views.
 *
 * The API functions are SECURITY DEFINER, so PostgreSQL's row-level security
 * on the tables cannot see who called (inside them the current user is the
 * extension owner); the views run as their owner too.  Every API function
 * and view therefore asks this module, about the *outer* role: the role the
 * session runs as (SET ROLE included), which a SECURITY DEFINER switch does
 * not change.  Row-level security policies on the tables use the same test,
 * for roles given direct table access.
 *
 * The answer is cached per backend and role, and dropped when program_roles
 * changes (its statement trigger sends a relcache invalidation to every
 * backend at commit) or role memberships change, so the write path pays a
 * table lookup only after a change.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_namespace.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "loyalty.h"

PG_FUNCTION_INFO_V1(loyalty_program_visible);
PG_FUNCTION_INFO_V1(loyalty_require_program);
PG_FUNCTION_INFO_V1(loyalty_require_member);
PG_FUNCTION_INFO_V1(loyalty_member_visible);
PG_FUNCTION_INFO_V1(loyalty_program_roles_changed);
PG_FUNCTION_INFO_V1(loyalty_programs_changed);

static bool cache_valid = false;
static Oid	cache_role = InvalidOid;
static bool cache_restricted = false;
static int	cache_nallowed = 0;
static int64 *cache_allowed = NULL;

static const Oid oid_arg[1] = {OIDOID};
static const Oid int8_arg[1] = {INT8OID};
static KeptPlan bindings_plan;
static KeptPlan member_plan;

static void
InvalidateRelcache(Datum arg, Oid relid)
{
	(void) arg;
	(void) relid;
	/* any relation: cheap to rebuild, and program_roles' OID may change */
	cache_valid = false;
}

static void
InvalidateSyscache(Datum arg, int cacheid, uint32 hashvalue)
{
	(void) arg;
	(void) cacheid;
	(void) hashvalue;
	cache_valid = false;
}

void
access_init(void)
{
	CacheRegisterRelcacheCallback(InvalidateRelcache, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, InvalidateSyscache, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHOID, InvalidateSyscache, (Datum) 0);
}

/*
 * Run the lookups as the owner of the loyalty schema: the role asking (an
 * analyst reading a view, say) has no rights on the tables; and under
 * search_path = pg_catalog, pg_temp.  The SQL functions over this module
 * carry no SET clause because views and row security call them per row,
 * where a clause would save and restore the setting on every call: the
 * path is pinned here, around the only statements they run.  An error
 * restores the caller's identity and search_path through (sub)transaction
 * abort.
 */
static void
BecomeOwner(Oid *save_user, int *save_sec, int *save_nestlevel)
{
	HeapTuple	tup;
	Oid			owner;

	tup = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(get_namespace_oid("loyalty", false)));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "loyalty: schema loyalty not found");
	owner = ((Form_pg_namespace) GETSTRUCT(tup))->nspowner;
	ReleaseSysCache(tup);
	*save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	GetUserIdAndSecContext(save_user, save_sec);
	SetUserIdAndSecContext(owner, *save_sec | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
}

static void
RestoreCaller(Oid save_user, int save_sec, int save_nestlevel)
{
	SetUserIdAndSecContext(save_user, save_sec);
	AtEOXact_GUC(true, save_nestlevel);
}

/* Load the outer role's bindings. */
static void
LoadBindings(Oid role)
{
	Datum		values[1];
	uint64		i;
	int64	   *allowed;
	Oid			save_user;
	int			save_sec;
	int			save_nestlevel;

	cache_valid = false;
	cache_role = role;
	cache_restricted = false;
	cache_nallowed = 0;
	if (cache_allowed)
	{
		pfree(cache_allowed);
		cache_allowed = NULL;
	}
	/* superusers and BYPASSRLS roles are never bound, as with row security */
	if (superuser_arg(role) || has_bypassrls_privilege(role))
	{
		cache_valid = true;
		return;
	}

	BecomeOwner(&save_user, &save_sec, &save_nestlevel);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "loyalty: SPI_connect failed");
	values[0] = ObjectIdGetDatum(role);
	if (loyalty_run(&bindings_plan,
					"SELECT DISTINCT r.program_id FROM loyalty.program_roles r"
					" JOIN pg_catalog.pg_roles x ON x.rolname" EQ "r.role_name"
					" WHERE pg_catalog.pg_has_role($1, x.oid, 'USAGE')",
					1, oid_arg, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "loyalty: could not read program_roles");
	allowed = MemoryContextAlloc(TopMemoryContext, sizeof(int64) * (SPI_processed + 1));
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		allowed[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
	}
	cache_restricted = SPI_processed > 0;
	cache_nallowed = (int) SPI_processed;
	cache_allowed = allowed;
	SPI_finish();
	RestoreCaller(save_user, save_sec, save_nestlevel);
	cache_valid = true;
}

/* May the outer role use this program? */
bool
access_program_visible(int64 program_id)
{
	Oid			role = GetOuterUserId();
	int			i;

	if (!cache_valid || cache_role != role)
		LoadBindings(role);
	if (!cache_restricted)
		return true;
	for (i = 0; i < cache_nallowed; i++)
		if (cache_allowed[i] == program_id)
			return true;
	return false;
}

/* Refuse (42501) a program the outer role is not bound to. */
void
access_check_program(int64 program_id)
{
	if (!access_program_visible(program_id))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" may not use program %lld",
						GetUserNameFromId(GetOuterUserId(), false), (long long) program_id),
				 errdetail("The role is bound to other programs in loyalty.program_roles."),
				 errhint("An administrator can bind it with loyalty.bind_role().")));
}

/* The program of a member, or -1 when there is no such member. */
static int64
MemberProgram(int64 member_id)
{
	Datum		values[1];
	bool		isnull;
	int64		program = -1;
	Oid			save_user;
	int			save_sec;
	int			save_nestlevel;

	BecomeOwner(&save_user, &save_sec, &save_nestlevel);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "loyalty: SPI_connect failed");
	values[0] = Int64GetDatum(member_id);
	loyalty_run(&member_plan, "SELECT program_id FROM loyalty.members WHERE member_id" EQ "$1",
				1, int8_arg, values, NULL, true, 1);
	if (SPI_processed == 1)
		program = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	RestoreCaller(save_user, save_sec, save_nestlevel);
	return program;
}

static bool
Restricted(void)
{
	Oid			role = GetOuterUserId();

	if (!cache_valid || cache_role != role)
		LoadBindings(role);
	return cache_restricted;
}

/* loyalty.program_visible(program) */
Datum
loyalty_program_visible(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(access_program_visible(PG_GETARG_INT64(0)));
}

/* loyalty.member_visible(member): for row security on per-member tables */
Datum
loyalty_member_visible(PG_FUNCTION_ARGS)
{
	int64		program;

	if (!Restricted())
		PG_RETURN_BOOL(true);
	program = MemberProgram(PG_GETARG_INT64(0));
	PG_RETURN_BOOL(program >= 0 && access_program_visible(program));
}

/* loyalty.require_program(program): the program, or 42501 */
Datum
loyalty_require_program(PG_FUNCTION_ARGS)
{
	int64		program = PG_GETARG_INT64(0);

	access_check_program(program);
	PG_RETURN_INT64(program);
}

/*
 * loyalty.require_member(member): the member, or 42501 when it belongs to a
 * program the role may not use (an unknown member is left to the caller's
 * own "does not exist" error).
 */
Datum
loyalty_require_member(PG_FUNCTION_ARGS)
{
	int64		member = PG_GETARG_INT64(0);

	if (Restricted())
	{
		int64		program = MemberProgram(member);

		if (program >= 0 && !access_program_visible(program))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("role \"%s\" may not use member %lld",
							GetUserNameFromId(GetOuterUserId(), false), (long long) member),
					 errdetail("The member belongs to program %lld; the role is bound to other programs.",
							   (long long) program),
					 errhint("An administrator can bind it with loyalty.bind_role().")));
	}
	PG_RETURN_INT64(member);
}

/*
 * The statement triggers that tell every backend, at commit, that a table
 * its caches copy from has changed: a relcache invalidation of the table,
 * which the caches' callbacks watch for.
 */
static Datum
InvalidateTriggerTable(FunctionCallInfo fcinfo)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("loyalty.%s() must be called as a trigger",
						get_func_name(fcinfo->flinfo->fn_oid))));
	CacheInvalidateRelcache(trigdata->tg_relation);
	return PointerGetDatum(NULL);
}

/* On program_roles: the role bindings cached here. */
Datum
loyalty_program_roles_changed(PG_FUNCTION_ARGS)
{
	return InvalidateTriggerTable(fcinfo);
}

/* On programs: the program row kept by the fast store (src/store_exec.c). */
Datum
loyalty_programs_changed(PG_FUNCTION_ARGS)
{
	return InvalidateTriggerTable(fcinfo);
}
