#!/usr/bin/env bash
# SQL written once (src/sql/README.md): regenerate every released script from
# its template in src/sql/updates/ and compare it with the sum of the script as
# shipped (src/sql/updates/SHA256SUMS); assemble the current install script;
# and fail when a function, procedure or view body is written anywhere but
# src/sql/udfs/NAME/VERSION.sql, when two source files hold the same body, or
# when the fragments do not include the newest version of what they include.
# Needs no cluster.  Exits 77 with "SKIP: ..." without python3 or sha256sum.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
export LC_ALL=C
for tool in python3 sha256sum; do
    command -v $tool >/dev/null || { echo "SKIP: $tool is missing"; exit 77; }
done
CURRENT=$(sed -n "s/^default_version = '\(.*\)'/\1/p" loyalty.control)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail=0

# the scripts, as the Makefile makes them
for t in src/sql/updates/loyalty--*.sql; do
    python3 tools/sqlinclude.py -I src/sql -o "$TMP/$(basename "$t")" "$t" || { echo "FAIL $t does not expand"; fail=1; }
done
if python3 tools/sqlinclude.py -I src/sql -o "$TMP/loyalty--$CURRENT.sql" src/sql/*.sql; then
    echo "ok   loyalty--$CURRENT.sql assembles from src/sql/*.sql ($(wc -c <"$TMP/loyalty--$CURRENT.sql") bytes)"
else
    echo "FAIL loyalty--$CURRENT.sql does not assemble"; fail=1
fi

# released scripts: the same bytes as shipped
released=0
while read -r sum name; do
    released=$((released + 1))
    if [ ! -f "src/sql/updates/$name" ]; then
        echo "FAIL $name was released but src/sql/updates/$name is gone"; fail=1
    elif [ ! -f "$TMP/$name" ]; then
        echo "FAIL $name could not be generated"; fail=1
    elif [ "$(sha256sum <"$TMP/$name" | cut -d' ' -f1)" = "$sum" ]; then
        echo "ok   $name is the script as shipped (sha256 $sum)"
    else
        echo "FAIL $name differs from the script as shipped: a released script never changes;"
        echo "     put the change in a new version (src/sql/README.md)"; fail=1
    fi
done <src/sql/updates/SHA256SUMS
[ "$released" -gt 0 ] || { echo "FAIL src/sql/updates/SHA256SUMS lists no script"; fail=1; }
for t in src/sql/updates/loyalty--*.sql; do
    grep -q "  $(basename "$t")\$" src/sql/updates/SHA256SUMS ||
        echo "note $(basename "$t") is not released yet (no sum in src/sql/updates/SHA256SUMS)"
done

# where bodies are written
python3 - "$CURRENT" <<'PY' || fail=1
import glob, os, re, sys

current = sys.argv[1]
INCLUDE = re.compile(r'#include(-replace)?[ \t]+"([^"]+)"[ \t]*$', re.M)
DEFINE = re.compile(r'CREATE\s+(?:OR\s+REPLACE\s+)?(FUNCTION|PROCEDURE|VIEW)\s+(?:\w+\.)?(\w+)', re.I)
NOBODY = re.compile(r'\bLANGUAGE\s+[\'"]?(c|internal)\b', re.I)
UDF = re.compile(r'src/sql/udfs/(\w+)/(\d+(?:\.\d+)*)(-\w+)?\.sql$')
failed = False


def fail(message):
    global failed
    failed = True
    print('FAIL ' + message)


def statements(text):
    """(offset, statement) of each top-level statement: skips comments and
    psql lines, keeps quotes, quoted names and dollar quotes whole."""
    i, n, start = 0, len(text), None
    while i < n:
        c = text[i]
        if start is None:
            if c.isspace():
                i += 1
                continue
            if text.startswith('--', i) or c == '\\':
                j = text.find('\n', i)
                i = n if j < 0 else j + 1
                continue
            start = i
        if text.startswith('--', i):
            j = text.find('\n', i)
            i = n if j < 0 else j
        elif text.startswith('/*', i):
            j = text.find('*/', i + 2)
            i = n if j < 0 else j + 2
        elif c in '\'"':
            j = i + 1
            while True:
                k = text.find(c, j)
                if k < 0:
                    i = n
                    break
                if text.startswith(c * 2, k):
                    j = k + 2
                    continue
                i = k + 1
                break
        elif c == '$' and not (i and (text[i - 1].isalnum() or text[i - 1] == '_')) \
                and re.match(r'\$(\w*)\$', text[i:]):
            tag = re.match(r'\$(\w*)\$', text[i:]).group(0)
            j = text.find(tag, i + len(tag))
            i = n if j < 0 else j + len(tag)
        elif c == ';':
            yield start, text[start:i + 1]
            start = None
            i += 1
        else:
            i += 1
    if start is not None:
        yield start, text[start:]


def body(stmt):
    """What a definition runs: its dollar-quoted body, else (a view, a
    SQL-standard body) all after its first line; white space folded."""
    m = re.search(r'(\$\w*\$)(.*?)\1', stmt, re.S)
    text = m.group(2) if m else stmt.split('\n', 1)[-1]
    return ' '.join(text.split())


def version(v):
    return tuple(int(x) for x in v.split('.'))


# 1. fragments and templates define bodies only by including them
fragments = sorted(glob.glob('src/sql/*.sql'))
templates = sorted(glob.glob('src/sql/updates/loyalty--*.sql'))
includes = {}                          # source -> [(replace, path)]


def scan(src):
    """The includes of a file, those of the parts it includes (src/sql/parts/,
    shared by a fragment and a template) counted as its own."""
    text = open(src).read()
    incs = []
    for m in INCLUDE.finditer(text):
        if m.group(2).startswith('parts/') and not m.group(1):
            incs += scan('src/sql/' + m.group(2))
        else:
            incs.append((bool(m.group(1)), m.group(2)))
    sql = INCLUDE.sub('', text)
    for offset, stmt in statements(sql):
        m = DEFINE.match(stmt)
        if m and not NOBODY.search(stmt):
            line = sql.count('\n', 0, offset) + 1
            fail('%s:%d writes the body of %s inline; it belongs in src/sql/udfs/%s/VERSION.sql'
                 % (src, line, m.group(2), m.group(2).lower()))
    return incs


for src in fragments + templates:
    includes[src] = scan(src)

# 2. each udf file: one definition of its folder's name, plain CREATE
udfs = {}                              # path -> (name, version, suffix, body)
for path in sorted(glob.glob('src/sql/udfs/**/*', recursive=True)):
    if os.path.isdir(path):
        continue
    m = UDF.match(path)
    if not m:
        fail('%s: udf files are src/sql/udfs/NAME/VERSION.sql' % path)
        continue
    stmts = [s for _, s in statements(open(path).read())]
    d = DEFINE.match(stmts[0]) if len(stmts) == 1 else None
    if not d or d.group(2).lower() != m.group(1) or re.match(r'CREATE\s+OR\s+REPLACE', stmts[0], re.I):
        fail('%s: must hold one CREATE FUNCTION, PROCEDURE or VIEW of %s (plain CREATE)' % (path, m.group(1)))
        continue
    udfs[path] = (m.group(1), m.group(2), m.group(3), body(stmts[0]))

# 3. no body twice
seen = {}
for path, (name, _, _, b) in udfs.items():
    if b in seen:
        fail('%s has the same body as %s: a new version must change the body (for an attribute '
             'alone, ALTER FUNCTION in the upgrade script)' % (path, seen[b]))
    seen.setdefault(b, path)

# 4. includes: every udf file used; install scripts plain CREATE; templates
#    include no version newer than their own; fragments the newest
used = set()
for src, incs in includes.items():
    target = re.search(r'loyalty--(?:[\d.]+--)?([\d.]+)\.sql$', src)
    target = version(target.group(1)) if target else version(current)
    install = src in fragments or re.search(r'loyalty--[\d.]+\.sql$', src)
    for replace, inc in incs:
        path = 'src/sql/' + inc
        used.add(path)
        if path not in udfs:
            continue
        if install and replace:
            fail('%s: #include-replace in an install script (plain CREATE there): %s' % (src, inc))
        if version(udfs[path][1]) > target:
            fail('%s includes %s, newer than the script' % (src, inc))
for path in udfs:
    if path not in used:
        fail('%s is included nowhere' % path)
newest = {}                            # (name, suffix) -> path; a suffix names an overload
for path, (name, v, suffix, _) in udfs.items():
    key = (name, suffix or '')
    if key not in newest or version(v) > version(udfs[newest[key]][1]):
        newest[key] = path
current_incs = ['src/sql/' + inc for src in fragments for _, inc in includes[src]]
for path in current_incs:
    key = (udfs[path][0], udfs[path][2] or '') if path in udfs else None
    if path in udfs and path != newest.get(key):
        fail('the fragments include %s, not the newest %s' % (path, newest.get(key)))
    if current_incs.count(path) > 1:
        fail('the fragments include %s %d times' % (path, current_incs.count(path)))

if not failed:
    print('ok   every body is written once: %d files for %d functions, procedures and views in '
          'src/sql/udfs/, none inline in the %d fragments and %d templates, the newest of each '
          'in the install script'
          % (len(udfs), len({name for name, _ in newest}), len(fragments), len(templates)))
sys.exit(1 if failed else 0)
PY
exit $fail
