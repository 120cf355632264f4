#!/usr/bin/env bash
# Inner half of tools/test.sh: runs inside pg_virtualenv (PGHOST, PGPORT,
# PGUSER are set for a throwaway cluster).  Counts one test per pg_regress
# test, isolation spec, pgTAP file and script, and prints the summary line.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
export PG_CONFIG
LOG=$ROOT/.run
rm -rf "$LOG" && mkdir -p "$LOG"
passed=0
failed=0
failures=()

# Count "test NAME ... ok|FAILED" lines of a pg_regress-style run.
count_regress() {
	local out=$1 ok bad
	ok=$(grep -cE '\.\.\. ok( |$)' "$out" || true)
	bad=$(grep -cE '\.\.\. FAILED' "$out" || true)
	passed=$((passed + ok))
	failed=$((failed + bad))
	if [ "$bad" -gt 0 ]; then
		failures+=("$(grep -E '\.\.\. FAILED' "$out" | awk '{print $2}' | tr '\n' ' ')")
	fi
}

# The suites run once per ledger store: the fast store (the default) and the
# SQL store (loyalty.fast_store = off); both must give the same results.
for mode in on off; do
	export PGOPTIONS="-c loyalty.fast_store=$mode"
	echo "== pg_regress (sql/, expected/), loyalty.fast_store=$mode"
	rm -rf regression.diffs output_iso
	make -s installcheck ISOLATION= >"$LOG/regress-$mode.out" 2>&1
	rc=$?
	cat "$LOG/regress-$mode.out"
	count_regress "$LOG/regress-$mode.out"
	[ $rc -ne 0 ] && [ -f regression.diffs ] && cp regression.diffs "$LOG/regress-$mode.diffs" && head -200 regression.diffs
	[ $rc -ne 0 ] && ! grep -qE '\.\.\. FAILED' "$LOG/regress-$mode.out" && { failed=$((failed + 1)); failures+=("pg_regress-run-$mode"); }

	if ls specs/*.spec >/dev/null 2>&1; then
		echo "== isolation (specs/), loyalty.fast_store=$mode"
		make -s installcheck REGRESS= >"$LOG/isolation-$mode.out" 2>&1
		rc=$?
		cat "$LOG/isolation-$mode.out"
		count_regress "$LOG/isolation-$mode.out"
		[ $rc -ne 0 ] && [ -f output_iso/regression.diffs ] && head -200 output_iso/regression.diffs
		[ $rc -ne 0 ] && ! grep -qE '\.\.\. FAILED' "$LOG/isolation-$mode.out" && { failed=$((failed + 1)); failures+=("isolation-run-$mode"); }
	fi

	if ls test/pgtap/*.sql >/dev/null 2>&1; then
		echo "== pgTAP (test/pgtap/), loyalty.fast_store=$mode"
		dropdb --if-exists loyalty_tap >/dev/null 2>&1
		createdb loyalty_tap && psql -qX -d loyalty_tap -v ON_ERROR_STOP=1 \
			-c 'CREATE EXTENSION pgtap' -c 'CREATE EXTENSION loyalty'
		for f in test/pgtap/*.sql; do
			if pg_prove -d loyalty_tap "$f" >"$LOG/$(basename "$f")-$mode.tap" 2>&1; then
				passed=$((passed + 1)); echo "ok     $f ($mode)"
			else
				failed=$((failed + 1)); failures+=("$f($mode)"); echo "FAILED $f ($mode)"; cat "$LOG/$(basename "$f")-$mode.tap"
			fi
		done
	fi
	unset PGOPTIONS
done

if ls test/scripts/*.sh >/dev/null 2>&1; then
	echo "== cluster scripts (test/scripts/)"
	# exit code 77: the script cannot run here (e.g. Citus not installed);
	# counted neither passed nor failed
	for f in test/scripts/*.sh; do
		bash "$f" >"$LOG/$(basename "$f").log" 2>&1
		rc=$?
		if [ $rc -eq 0 ]; then
			passed=$((passed + 1)); echo "ok     $f"
		elif [ $rc -eq 77 ]; then
			echo "skip   $f ($(grep -m1 '^SKIP' "$LOG/$(basename "$f").log" || echo 'exit 77'))"
		else
			failed=$((failed + 1)); failures+=("$f"); echo "FAILED $f"; tail -50 "$LOG/$(basename "$f").log"
		fi
	done
fi

echo
[ ${#failures[@]} -gt 0 ] && echo "failed: ${failures[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
