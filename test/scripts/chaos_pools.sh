#!/usr/bin/env bash
# The chaos load with household pools: every earn of a household's member
# also credits its pool, reversals take shares back, household_redeem spends
# the pools (test/scripts/chaos_load.sh, CHAOS_POOLS=1).
set -euo pipefail
CHAOS_POOLS=1 exec bash "$(dirname "${BASH_SOURCE[0]}")/chaos_load.sh" "$@"
