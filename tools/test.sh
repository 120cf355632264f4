#!/usr/bin/env bash
# Run every test: install what is missing from Debian, build warning-free,
# install, then run pg_regress, the isolation specs, the pgTAP files and the
# cluster-level scripts in a throwaway cluster.  Exits non-zero on any failure
# and ends with one line "N passed, M failed".
source "$(dirname "$0")/common.sh"
ensure_packages "${TEST_PACKAGES[@]}"
build_and_install
say "running the suites in a throwaway PostgreSQL $PGVER cluster"
in_throwaway_cluster "$ROOT/tools/run-suites.sh"
