-- Privileges, from the catalog, for every object the extension creates:
-- pinned search_path on every SECURITY DEFINER function, nothing for PUBLIC
-- but the types' own functions and operators, the application role limited to
-- the API, the analyst role limited to the views.
BEGIN;
SELECT plan(13);

CREATE TEMP TABLE fns AS
SELECT p.oid, p.oid::regprocedure::text AS sig, p.prosecdef, p.prokind, p.proconfig
FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'loyalty';

SELECT cmp_ok((SELECT count(*) FROM fns), '>', 100::bigint, 'the extension''s functions are found');
SELECT is_empty($$SELECT sig FROM fns WHERE prosecdef
                  AND NOT coalesce(proconfig, '{}') @> ARRAY['search_path=pg_catalog, pg_temp']$$,
                'every SECURITY DEFINER function pins search_path = pg_catalog, pg_temp');
SELECT is_empty($$SELECT sig FROM fns WHERE prosecdef AND has_function_privilege('public', oid, 'EXECUTE')$$,
                'PUBLIC may execute no SECURITY DEFINER function');
SELECT is_empty($$SELECT sig FROM fns WHERE prokind = 'p' AND has_function_privilege('public', oid, 'EXECUTE')$$,
                'PUBLIC may call no procedure');
SELECT is_empty($$SELECT sig FROM fns WHERE has_function_privilege('public', oid, 'EXECUTE')
                    AND sig !~ 'loyalty\.(points|tier)(\M|_)' AND sig <> 'loyalty.version()'$$,
                'PUBLIC may execute nothing but the types'' functions, operators and aggregates (and version())');
SELECT is_empty($$SELECT sig FROM fns WHERE sig ~ '^loyalty\.(bgnbd|mbgnbd|gamma_gamma|sbg)_(fit|loglik|expected|p_alive|survival|renewal_probability|expected_remaining|derl)\(|^loyalty\.(rfm|predict_purchases)\('
                    AND NOT (has_function_privilege('loyalty_analyst', oid, 'EXECUTE') AND has_function_privilege('loyalty_admin', oid, 'EXECUTE'))$$,
                'the analyst and the administrator may call the model formulas the views call');
SELECT is_empty($$SELECT sig FROM fns WHERE sig ~ '^loyalty\.(rfm|btyd|bgnbd|mbgnbd|gamma_gamma|sbg)_|^loyalty\.(rfm|predict_purchases)\('
                    AND has_function_privilege('loyalty_app', oid, 'EXECUTE')$$,
                'the application role may not');
SELECT is_empty($$SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = 'loyalty' AND c.relkind IN ('r', 'p', 'v')
                    AND (has_table_privilege('loyalty_app', c.oid, 'SELECT') OR has_table_privilege('loyalty_app', c.oid, 'INSERT')
                         OR has_table_privilege('loyalty_app', c.oid, 'UPDATE') OR has_table_privilege('loyalty_app', c.oid, 'DELETE'))$$,
                'the application role can read or write no table or view directly');
SELECT is_empty($$SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = 'loyalty' AND c.relkind IN ('r', 'p')
                    AND (has_table_privilege('loyalty_analyst', c.oid, 'SELECT') OR has_table_privilege('loyalty_analyst', c.oid, 'INSERT'))$$,
                'the analyst role can read no table');
SELECT is_empty($$SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = 'loyalty' AND c.relkind = 'v' AND NOT has_table_privilege('loyalty_analyst', c.oid, 'SELECT')$$,
                'the analyst role can read every view');
-- what the analyst may execute among the definer functions: what its views call
SELECT is_empty($$SELECT sig FROM fns WHERE prosecdef AND has_function_privilege('loyalty_analyst', oid, 'EXECUTE')
                    AND sig NOT IN ('loyalty.purchase_summary(bigint,date,text,bigint,bigint)',
                                    'loyalty.predict_member(loyalty.models,bigint)',
                                    'loyalty.rollup_changes(bigint,bigint,bigint,bigint)', 'loyalty.rollups_as_of(bigint)',
                                    'loyalty.rollup_account_changes(bigint,bigint,bigint,bigint,bigint,bigint)',
                                    'loyalty.rfm_quintiles()')$$,
                'the analyst role may execute no writer');
SELECT is_empty($$SELECT sig FROM fns WHERE prosecdef AND has_function_privilege('loyalty_app', oid, 'EXECUTE')
                    AND sig ~ '^loyalty\.(adjust|merge_members|expire_|create_|define_|set_|assign_tier|restock|fit_models|fit_membership_models|review_|verify|emit_event|tier_change|tier_after_write|referral_purchase|referral_refusal|rules_version_bump|ledger_refuse)'$$,
                'the application role may execute no administrator or internal function');
SELECT is_empty($$SELECT sig FROM fns WHERE sig ~ '^loyalty\.(refresh_rollups|rollup_mark_safe)'
                    AND (has_function_privilege('loyalty_app', oid, 'EXECUTE') OR has_function_privilege('loyalty_analyst', oid, 'EXECUTE'))$$,
                'neither the application nor the analyst role may refresh the rollups (nor write them: no table)');

SELECT * FROM finish();
ROLLBACK;
