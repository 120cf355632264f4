#!/usr/bin/env bash
# The demo: install what is missing from Debian, build, install, then run
# tools/demo.sql in a throwaway cluster (removed afterwards) and show results.
source "$(dirname "$0")/common.sh"
ensure_packages
build_and_install
say "running the demo in a throwaway PostgreSQL $PGVER cluster"
# The CDNOW sample ships in data/ (LOYALTY_DATA may point at another copy);
# psql reads it as the client (\copy), so the server never opens the clone.
cdnow_file=${LOYALTY_DATA:-data}/cdnow/CDNOW_sample.txt
cd "$ROOT"
[ -r "$cdnow_file" ] || { echo "demo.sh: $cdnow_file not found" >&2; exit 1; }
export cdnow_file
in_throwaway_cluster sh -c 'createdb loyalty_demo && psql -X -v ON_ERROR_STOP=1 -v cdnow_file="$cdnow_file" -d loyalty_demo -f tools/demo.sql'
