#!/usr/bin/env bash
# One version everywhere: loyalty.control, the Makefile, META.json (the
# distribution and the extension it provides), debian/changelog, CHANGELOG.md
# and the C library (loyalty.version()) and the installed extension must agree.
set -euo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
fail=0
control=$(sed -n "s/^default_version = '\(.*\)'/\1/p" loyalty.control)
make_v=$(make -s -f Makefile PG_CONFIG="$PGBIN/pg_config" --eval 'print-v: ; @echo $(EXTVERSION)' print-v)
meta_v=$(python3 -c "import json; m = json.load(open('META.json')); print(m['version'], m['provides']['loyalty']['version'], m['provides']['loyalty']['file'])")
deb_v=$(sed -n '1s/^loyalty (\([^)]*\)).*/\1/p' debian/changelog)
changelog=$(grep -c "^## $control\b" CHANGELOG.md || true)
db=loyalty_version_check
"$PGBIN/createdb" $db
trap '"$PGBIN/dropdb" --if-exists $db' EXIT
read -r lib ext < <("$PGBIN/psql" -X -q -A -t -F ' ' -d $db -c "CREATE EXTENSION loyalty" \
    -c "SELECT loyalty.version(), extversion FROM pg_extension WHERE extname = 'loyalty'" | tail -1)

check() { if [[ $2 == "$3" ]]; then echo "ok   $1: $2"; else echo "FAIL $1: '$2', expected '$3'"; fail=1; fi; }
check "Makefile EXTVERSION" "$make_v" "$control"
# PGXN wants semantic versions: 1.0 is 1.0.0 there
check "META.json version, provides.version, provides.file" "$meta_v" "$control.0 $control.0 loyalty--$control.sql"
check "debian/changelog" "$deb_v" "$control"
check "CHANGELOG.md has a section for it" "$changelog" "1"
check "loyalty.version() of the library" "$lib" "$control"
check "installed extension version" "$ext" "$control"
python3 -c "import json; json.load(open('META.json'))" && echo "ok   META.json is valid JSON" || { echo "FAIL META.json"; fail=1; }
# make dist: the release archive from git, with the version in its name and prefix
if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
    make -s dist PG_CONFIG="$PGBIN/pg_config" >/dev/null
    listing=$(python3 -c "import zipfile, sys; print('\n'.join(zipfile.ZipFile(sys.argv[1]).namelist()))" "loyalty-$control.zip")
    rm -f "loyalty-$control.zip"
    for f in META.json loyalty.control Makefile README.md src/ledger.c debian/changelog; do
        if grep -qx "loyalty-$control/$f" <<<"$listing"; then echo "ok   make dist: loyalty-$control.zip has loyalty-$control/$f"; else echo "FAIL make dist lacks $f"; fail=1; fi
    done
fi
exit $fail
