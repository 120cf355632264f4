#!/usr/bin/env bash
# The C sources as PostgreSQL lays them out and clean under cppcheck:
# "make indent-check" (src/*.c src/*.h unchanged by pgindent's layout, see
# tools/indent.sh; on failure the files and their diff, "make indent" fixes
# them) and "make cppcheck" (no finding; the Makefile says what it
# suppresses).  Needs no cluster and changes no file.  Exits 77 with
# "SKIP: ..." without make, pg_bsd_indent 2.1.1 (Debian's pg-bsd-indent),
# objdump or cppcheck.
set -euo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PG_CONFIG=${PG_CONFIG:-$PGBIN/pg_config}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
for tool in make pg_bsd_indent objdump cppcheck "$PG_CONFIG"; do
    command -v "$tool" >/dev/null || { echo "SKIP: $tool is missing"; exit 77; }
done
version=$(pg_bsd_indent --version 2>&1 | awk '{print $2; exit}')
[ "$version" = 2.1.1 ] ||
    { echo "SKIP: pg_bsd_indent is $version, PostgreSQL 15's pgindent wants 2.1.1"; exit 77; }
fail=0

# layout: indent.sh prints "ok ..." or "FAIL ..." with the files and the diff
make -s --no-print-directory PG_CONFIG="$PG_CONFIG" indent-check || fail=1

# cppcheck: one line per finding, file:line: severity: message [id]
nfiles=$(ls src/*.c | wc -l)
if out=$(make -s --no-print-directory PG_CONFIG="$PG_CONFIG" CPPCHECK="cppcheck" cppcheck 2>&1); then
    echo "ok   cppcheck finds nothing in $nfiles files (make cppcheck)"
else
    echo "FAIL cppcheck (make cppcheck); fix each, or for a false positive put"
    echo "     /* cppcheck-suppress ID */ on the line above it:"
    grep -v -e '^cppcheck ' -e '^make: ' <<<"$out" | sed 's/^/     /'
    fail=1
fi
exit $fail
