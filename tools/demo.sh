#!/usr/bin/env bash
# The demo: install what is missing from Debian, build, install, then run
# tools/demo.sql in a throwaway cluster (removed afterwards) and show results.
source "$(dirname "$0")/common.sh"
ensure_packages
build_and_install
say "running the demo in a throwaway PostgreSQL $PGVER cluster"
# CDNOW lives outside the repository: next to this checkout, or next to the
# repository it was cloned from
if [ -z "${LOYALTY_DATA:-}" ]; then
	origin=$(git -C "$ROOT" remote get-url origin 2>/dev/null || true)
	for d in "$ROOT/../shared/data" "${origin%/}/../shared/data"; do
		[ -r "$d/cdnow/CDNOW_sample.txt" ] && { LOYALTY_DATA=$(cd "$d" && pwd); break; }
	done
fi
export LOYALTY_DATA=${LOYALTY_DATA:-$ROOT/../shared/data}
in_throwaway_cluster sh -c "createdb loyalty_demo && psql -X -v ON_ERROR_STOP=1 -v LOYALTY_DATA='$LOYALTY_DATA' -d loyalty_demo -f '$ROOT/tools/demo.sql'"
