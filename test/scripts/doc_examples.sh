#!/usr/bin/env bash
# Every SQL example of the documentation runs: each fenced ```sql block of
# README.md and doc/*.md, in file order.  The blocks of one file run in order
# in a fresh, empty database of their own (so a file's first example creates
# the extension, and later blocks use what earlier ones made), each block in
# its own psql session with ON_ERROR_STOP: objects carry over from block to
# block, session settings (search_path) do not.
#
# Markers after "sql" on the opening fence:
#   ```sql norun   not run (needs Citus or pg_cron, or a fragment with
#                  placeholders); counted and reported
#   ```sql error   must fail: the script checks that psql reports an error
# Any other word after "sql" is refused, so a misspelt marker cannot hide a
# block.
#
# Runs inside the throwaway cluster of tools/test.sh (PGHOST, PGPORT, PGUSER
# set by pg_virtualenv) with the extension installed.  DOC_ROOT points it at
# another checkout's documentation (default: this repository); DOC_VERBOSE=1
# prints every block's output (to check the results an example's comments
# state).  Exit 0 when
# every block behaves as marked; 1 otherwise, naming file, block and line.
set -euo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DOC_ROOT=${DOC_ROOT:-$ROOT}
TMP=$(mktemp -d -t loyalty-doc.XXXXXX)
DBS=()
cleanup() { set +e; for d in "${DBS[@]}"; do "$PGBIN/dropdb" --if-exists "$d"; done; rm -rf "$TMP"; }
trap cleanup EXIT

files=("$DOC_ROOT/README.md")
for f in "$DOC_ROOT"/doc/*.md; do [ -f "$f" ] && files+=("$f"); done

ran=0 norun=0 errors=0 failed=0 n=0
for f in "${files[@]}"; do
	rel=${f#"$DOC_ROOT"/}
	n=$((n + 1))
	dir=$TMP/$n
	mkdir -p "$dir"
	# Split the file into dir/NNN.sql (block text, fence indentation removed)
	# and dir/NNN.info ("<marker> <line of the first SQL line>").
	awk -v dir="$dir" '
		function fail(msg) { printf "%s:%d: %s\n", FILENAME, NR, msg > "/dev/stderr"; bad = 1; exit 1 }
		!infence && /^[ \t]*```/ {
			line = $0; sub(/^[ \t]*/, "", line); indent = length($0) - length(line)
			info = substr(line, 4); gsub(/^[ \t]+|[ \t]+$/, "", info)
			infence = 1; sqlblock = 0
			split(info, w, /[ \t]+/)
			if (w[1] == "sql") {
				marker = (w[2] == "" ? "run" : w[2])
				if (marker != "run" && marker != "norun" && marker != "error") fail("unknown marker \"" w[2] "\" (norun or error)")
				if (w[3] != "") fail("one marker per block")
				sqlblock = 1; b++
				out = sprintf("%s/%03d.sql", dir, b)
				printf "%s %d\n", marker, NR + 1 > sprintf("%s/%03d.info", dir, b)
				printf "" > out
			}
			next
		}
		infence && /^[ \t]*```[ \t]*$/ { infence = 0; if (sqlblock) close(out); next }
		infence && sqlblock { print (substr($0, 1, indent) ~ /^[ \t]*$/ ? substr($0, indent + 1) : $0) > out }
		END { if (!bad && infence) { printf "%s: unclosed code fence\n", FILENAME > "/dev/stderr"; exit 1 } }
	' "$f" || { echo "FAIL $rel: cannot read its code blocks"; failed=$((failed + 1)); continue; }
	ls "$dir"/*.sql >/dev/null 2>&1 || { echo "--   $rel: no sql blocks"; continue; }

	db=loyalty_doc_$n
	"$PGBIN/dropdb" --if-exists "$db" 2>/dev/null
	"$PGBIN/createdb" "$db"
	DBS+=("$db")
	for sql in "$dir"/*.sql; do
		read -r marker first <"${sql%.sql}.info"
		b=$((10#$(basename "$sql" .sql)))
		where="$rel block $b (line $first)"
		if [ "$marker" = norun ]; then
			norun=$((norun + 1)); echo "norun $where"; continue
		fi
		out=$TMP/out
		set +e
		"$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$db" -f "$sql" >"$out" 2>&1
		rc=$?
		set -e
		if [ "$marker" = error ]; then
			if [ $rc -ne 0 ] && grep -q 'ERROR:' "$out"; then
				errors=$((errors + 1)); echo "ok   $where fails as marked: $(grep -m1 'ERROR:' "$out" | sed 's/^psql:[^ ]* //')"
			else
				failed=$((failed + 1)); echo "FAIL $where is marked error but ran without one"
			fi
			continue
		fi
		[ "${DOC_VERBOSE:-0}" = 1 ] && sed 's/^/    /' "$out"
		if [ $rc -eq 0 ]; then
			ran=$((ran + 1)); echo "ok   $where"
		else
			failed=$((failed + 1))
			# psql names the block file and the line in it: translate to the .md file's line
			at=$(sed -n 's/^psql:[^:]*:\([0-9]*\): .*/\1/p' "$out" | head -1)
			echo "FAIL $where${at:+, error at $rel line $((first + at - 1))}:"
			sed -e 's/^psql:[^:]*:[0-9]*: /    /' -e 't' -e 's/^/    /' "$out" | grep -v '^    $' | tail -20
		fi
	done
done

echo
echo "doc examples: $ran ran, $norun marked norun, $errors failed as marked error, $failed failed"
[ "$failed" -eq 0 ] && [ "$ran" -gt 0 ]
