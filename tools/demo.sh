#!/usr/bin/env bash
# The demo: install what is missing from Debian, build, install, then run
# tools/demo.sql in a throwaway cluster (removed afterwards) and show results;
# the HTML report of the CDNOW program is left in loyalty-report.html.
source "$(dirname "$0")/common.sh"
ensure_packages
build_and_install
say "running the demo in a throwaway PostgreSQL $PGVER cluster"
# The CDNOW sample ships in data/ (LOYALTY_DATA may point at another copy);
# psql reads it as the client (\copy), so the server never opens the clone.
cdnow_file=${LOYALTY_DATA:-data}/cdnow/CDNOW_sample.txt
cd "$ROOT"
[ -r "$cdnow_file" ] || { echo "demo.sh: $cdnow_file not found" >&2; exit 1; }
# The HTML report (tools/report.sql) goes to a directory of its own that psql,
# running as the cluster's user (postgres when we are root), may write to;
# it is copied into the clone (loyalty-report.html, ignored by git) after.
report_dir=$(mktemp -d)
trap 'rm -rf "$report_dir"' EXIT
chmod 1777 "$report_dir"
report_file=$report_dir/loyalty-report.html
export cdnow_file report_file
in_throwaway_cluster sh -c 'createdb loyalty_demo && psql -X -v ON_ERROR_STOP=1 -v cdnow_file="$cdnow_file" -v report_file="$report_file" -d loyalty_demo -f tools/demo.sql'
cp "$report_file" "$ROOT/loyalty-report.html"
say "the CDNOW report: $ROOT/loyalty-report.html (open it in a browser)"
