#!/usr/bin/env bash
# The HTML report (tools/report.sql), rendered by a real browser: load the
# CDNOW sample through the API into a program whose name needs escaping, fit
# the models, write the report as loyalty_admin, as loyalty_analyst and for a
# program without data, render each in headless Chromium and check in the
# rendered page that
#   - every chart's SVG has a non-zero size and as many marks (bars, points,
#     cells) as the views have rows for it, each mark drawn (a zero-size mark
#     only for a zero value) and inside its SVG, and every label has a width;
#   - the screenshot is not blank, and each chart's area has painted pixels;
#   - text is escaped (the program name reads back unchanged);
#   - the analyst gets three charts and a note for the admin-only section,
#     a program without data gets notes and no SVG, an unknown program fails;
#   - loyalty.model_tracking is charted (per period and cumulative, the
#     program's purchase model, the holdout marked).
# A negative control: a report with one chart's marks taken out must fail
# the same check.  Runs inside the throwaway cluster of tools/test.sh; skips
# (77) without Chromium (Debian's chromium, which tools/test.sh installs).
set -euo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
CHROMIUM=${CHROMIUM:-$(command -v chromium || true)}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$HERE"
if [[ -z $CHROMIUM || ! -x $CHROMIUM ]]; then
    echo "SKIP: Chromium is not installed (apt-get install chromium; tools/test.sh installs it)"
    exit 77
fi
DATA=${LOYALTY_DATA:-data}/cdnow
[[ -r $DATA/CDNOW_sample.txt ]] || { echo "report.sh: $DATA/CDNOW_sample.txt not found (LOYALTY_DATA: a copy of data/)" >&2; exit 1; }
DB=loyalty_report
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"; "$PGBIN/dropdb" --if-exists $DB' EXIT
psql() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
fail=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }

"$PGBIN/createdb" $DB
# CDNOW's purchases through the API, as tools/demo.sql loads them
psql -d $DB -o /dev/null -v sample="$DATA/CDNOW_sample.txt" <<'SQL'
CREATE EXTENSION loyalty;
CREATE TEMP TABLE raw (line text);
\set copy_raw '\\copy raw FROM ' :'sample'
:copy_raw
CREATE TEMP TABLE cd AS
SELECT split_part(t, ' ', 2)::int AS customer, to_date(split_part(t, ' ', 3), 'YYYYMMDD') AS day,
       split_part(t, ' ', 5)::numeric AS dollars
FROM (SELECT regexp_replace(btrim(line), '\s+', ' ', 'g') AS t FROM raw) r;
SELECT loyalty.create_program('CDNOW <b>&</b> "Co''s"', currency => 'USD') AS p \gset
SELECT count(loyalty.enroll(:p, 'cdnow', c::text, joined_at => '1997-01-01')) FROM (SELECT DISTINCT customer AS c FROM cd) s;
SELECT count(loyalty.earn(loyalty.member_id(:p, 'cdnow', customer::text), dollars,
                          occurred_at => day + time '12:00' AT TIME ZONE 'UTC')) FROM cd;
-- some points redeemed, so that the points chart has two non-zero lines
SELECT count(loyalty.redeem(member_id, '20', occurred_at => '1998-03-15 12:00+00')) FROM loyalty.accounts WHERE program_id = :p AND balance >= '100' AND member_id % 5 = 0;
SELECT loyalty.fit_models(:p, '1997-09-30', 'week');
SELECT loyalty.create_program('Empty') AS empty \gset
SQL
P=1
EMPTY=2
HOLDOUT_END=1998-06-30

# run tools/report.sql as a role; $1 role, $2 program, $3 file, more: psql -v
report() {
    local role=$1 program=$2 file=$3
    shift 3
    PGOPTIONS="-c role=$role" psql -d $DB -v program="$program" -v report_file="$file" "$@" -f tools/report.sql 2>"$TMP/report.err" ||
        { cat "$TMP/report.err"; return 1; }
}

# The chart measurements of a report, rendered: per figure "chart svgs
# width height marks bad_marks zero_marks outside blank_labels nodata x y w h"
# (bad: a zero-size mark of a non-zero value; outside: a mark beyond its SVG;
# blank_labels: an SVG text without width; x y w h: the SVGs' box on the
# page), then "title <h1 text>" and "page <width> <height>".
MEASURE='<script>
(function () {
  var out = [];
  document.querySelectorAll("figure[data-chart]").forEach(function (f) {
    var svgs = f.querySelectorAll("svg.chart"), w = 0, h = 0, marks = 0, bad = 0, zero = 0, outside = 0, blank = 0;
    var x0 = 1e9, y0 = 1e9, x1 = 0, y1 = 0;
    svgs.forEach(function (s) {
      var r = s.getBoundingClientRect();
      w = Math.max(w, r.width); h += r.height;
      x0 = Math.min(x0, r.left + scrollX); y0 = Math.min(y0, r.top + scrollY);
      x1 = Math.max(x1, r.right + scrollX); y1 = Math.max(y1, r.bottom + scrollY);
      s.querySelectorAll(".mark").forEach(function (m) {
        var b = m.getBBox(), q = m.getBoundingClientRect();
        marks++;
        if (!(b.width > 0 && b.height > 0)) { if (Number(m.dataset.v) === 0) zero++; else bad++; }
        if (q.left < r.left - 1 || q.right > r.right + 1 || q.top < r.top - 1 || q.bottom > r.bottom + 1) outside++;
      });
      s.querySelectorAll("text").forEach(function (t) {
        if (t.textContent.trim() !== "" && !(t.getBBox().width > 0)) blank++;
        var q = t.getBoundingClientRect();
        if (t.textContent.trim() !== "" && (q.left < r.left - 1 || q.right > r.right + 1)) blank++;
      });
    });
    out.push([f.dataset.chart, svgs.length, Math.round(w), Math.round(h), marks, bad, zero, outside, blank,
              f.querySelectorAll("p.nodata").length, Math.round(x0), Math.round(y0), Math.round(x1 - x0), Math.round(y1 - y0)].join(" "));
  });
  // pixels to look at in the screenshot: up to 12 marks per chart, each a
  // point inside it (the centre of a circle, an inner corner of a rectangle)
  // where it is the topmost element, and its fill colour
  document.querySelectorAll("figure[data-chart]").forEach(function (f) {
    var marks = f.querySelectorAll("svg.chart .mark"), step = Math.max(1, Math.floor(marks.length / 12)), n = 0;
    for (var i = 0; i < marks.length && n < 12; i += step) {
      var m = marks[i], q, x, y;
      m.scrollIntoView({block: "center"});
      q = m.getBoundingClientRect();
      if (q.width < 4 || q.height < 4) continue;
      if (m.tagName === "circle") { x = q.left + q.width / 2; y = q.top + q.height / 2; }
      else { x = q.left + Math.min(3, q.width / 2); y = q.top + Math.min(3, q.height / 2); }
      if (document.elementFromPoint(x, y) !== m) continue;
      n++;
      out.push("px " + f.dataset.chart + " " + Math.floor(x + scrollX) + " " + Math.floor(y + scrollY) + " " +
               getComputedStyle(m).fill.replace(/[^0-9,]/g, "").split(",").join(" "));
    }
  });
  window.scrollTo(0, 0);
  out.push("title " + document.querySelector("h1").textContent);
  out.push("page " + document.documentElement.scrollWidth + " " + document.documentElement.scrollHeight);
  var pre = document.createElement("pre");
  pre.id = "measure";
  pre.textContent = out.join("\n");
  document.body.appendChild(pre);
})();
</script>'

chrome() {
    HOME=$TMP timeout 180 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --hide-scrollbars \
        --user-data-dir="$TMP/chrome" --force-device-scale-factor=1 --run-all-compositor-stages-before-draw --virtual-time-budget=5000 "$@" 2>"$TMP/chrome.log"
}

# measure FILE: writes FILE.measure (the lines above), from the rendered page
measure() {
    local f=$1 probe=${1%.html}.probe.html
    # the script goes in a copy only: the report itself has no script
    python3 - "$f" "$probe" "$MEASURE" <<'PY'
import sys
src, dst, script = sys.argv[1:4]
html = open(src, encoding='utf-8').read()
assert html.count('</body>') == 1, 'no single </body>'
open(dst, 'w', encoding='utf-8').write(html.replace('</body>', script + '</body>'))
PY
    chrome --window-size=1000,1200 --dump-dom "file://$probe" >"$f.dom" || { echo "chromium failed:"; tail -5 "$TMP/chrome.log"; return 1; }
    python3 - "$f.dom" >"$f.measure" <<'PY'
import html, re, sys
m = re.search(r'<pre id="measure">(.*?)</pre>', open(sys.argv[1], encoding='utf-8').read(), re.S)
print(html.unescape(m.group(1)) if m else 'no measurement: the page did not render')
PY
}

# check_charts FILE CHART=MARKS...: every listed chart drawn with that many
# marks; prints what is wrong, returns non-zero if anything is
check_charts() {
    local f=$1 spec chart want line problems=0
    shift
    for spec in "$@"; do
        chart=${spec%%=*}; want=${spec#*=}
        line=$(grep -m1 "^$chart " "$f.measure" || true)
        if [[ -z $line ]]; then echo "  $chart: no such chart in the page"; problems=1; continue; fi
        read -r _ svgs w h marks badm zero outside blank nodata _ <<<"$line"
        if (( svgs < 1 || w < 200 || h < 100 )); then echo "  $chart: not drawn ($svgs SVG, ${w}x${h} px)"; problems=1; fi
        if (( marks != want )); then echo "  $chart: $marks marks, the views have $want"; problems=1; fi
        if (( badm > 0 || outside > 0 )); then echo "  $chart: $badm marks of a non-zero value without size, $outside outside the chart"; problems=1; fi
        if (( blank > 0 )); then echo "  $chart: $blank labels not rendered or cut off"; problems=1; fi
        if (( nodata > 0 )); then echo "  $chart: a no-data note"; problems=1; fi
    done
    return $problems
}

# paint FILE: a screenshot of the whole page; prints "page INK%" (the share of
# pixels darker than the page's white) and per chart "CHART SAMPLED PAINTED":
# how many of the sampled marks have their fill colour on the screenshot
paint() {
    local f=$1 size
    size=$(sed -n 's/^page //p' "$f.measure")
    chrome --window-size="${size% *},${size#* }" --screenshot="$f.png" "file://${f%.html}.probe.html" >/dev/null ||
        { echo "chromium failed:"; tail -5 "$TMP/chrome.log"; return 1; }
    python3 - "$f.png" "$f.measure" <<'PY'
import struct, sys, zlib
def read_png(path):
    data = open(path, 'rb').read()
    assert data[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
    pos, idat = 8, b''
    while pos < len(data):
        n, kind = struct.unpack('>I4s', data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b'IHDR':
            w, h, depth, ctype, _, _, interlace = struct.unpack('>IIBBBBB', body)
        elif kind == b'IDAT':
            idat += body
        pos += 12 + n
    assert depth == 8 and ctype in (2, 6) and not interlace, 'unsupported PNG'
    bpp = 3 if ctype == 2 else 4
    raw, stride, rows, prev = zlib.decompress(idat), w * bpp, [], bytearray(w * bpp)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
        elif f:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                if f == 1: line[i] = (line[i] + a) & 255
                elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return w, h, bpp, rows
w, h, bpp, rows = read_png(sys.argv[1])
def ink(x0, y0, cw, ch):   # share of pixels clearly darker than the page (#f8fafc) and white
    n = tot = 0
    for y in range(max(y0, 0), min(y0 + ch, h), 2):
        r = rows[y]
        for x in range(max(x0, 0), min(x0 + cw, w), 2):
            tot += 1
            if min(r[x * bpp], r[x * bpp + 1], r[x * bpp + 2]) < 200:
                n += 1
    return 100.0 * n / max(tot, 1)
print('page %.2f' % ink(0, 0, w, h))
sampled, painted = {}, {}
for line in open(sys.argv[2], encoding='utf-8'):
    p = line.split()
    if p[0] == 'px':
        chart, x, y, want = p[1], int(p[2]), int(p[3]), list(map(int, p[4:7]))
        sampled[chart] = sampled.get(chart, 0) + 1
        if 0 <= x < w and 0 <= y < h and all(abs(rows[y][x * bpp + k] - want[k]) <= 40 for k in range(3)):
            painted[chart] = painted.get(chart, 0) + 1
for chart in sampled:
    print('%s %d %d' % (chart, sampled[chart], painted.get(chart, 0)))
PY
}

# the number of marks each chart must have, from the views
expect() {   # program
    psql -d $DB -A -t -v program="$1" -v holdout_end=$HOLDOUT_END <<'SQL'
SELECT 'kpi=' || 5 * count(*) FROM (SELECT generate_series(min(month), max(month), interval '1 month') FROM loyalty.kpi_monthly WHERE program_id = :program) m;
SELECT 'segments=' || count(DISTINCT segment) FROM loyalty.member_rfm WHERE program_id = :program;
SELECT 'palive=' || count(*) FROM (
    SELECT DISTINCT least(p.repeat_purchases, 7), least(floor(p.t_x / w.width), 7)
    FROM loyalty.member_predictions p,
         (SELECT greatest(ceil(max(customer_age) / 8), 1) AS width FROM loyalty.member_predictions WHERE program_id = :program) w
    WHERE p.program_id = :program) c;
SELECT 'holdout=' || 2 * count(*) FROM loyalty.model_holdout(:program, :'holdout_end') WHERE repeat_purchases <> 'all' AND chosen;
SQL
}

# --- the CDNOW report as loyalty_admin ------------------------------------
mapfile -t WANT < <(expect $P)
echo "expected marks: ${WANT[*]}"
report loyalty_admin $P "$TMP/admin.html" -v holdout_end=$HOLDOUT_END
measure "$TMP/admin.html"
cat "$TMP/admin.html.measure"
# the tracking section: two charts (per period, cumulative) of two lines
tracking_rows=$(psql -d $DB -A -t -c "SELECT count(*) FROM loyalty.model_tracking($P, '$HOLDOUT_END') WHERE chosen")
WANT+=("tracking=$((4 * tracking_rows))")
if problems=$(check_charts "$TMP/admin.html" "${WANT[@]}"); then
    ok "admin report: $(awk 'NF == 14 && $2 > 0' "$TMP/admin.html.measure" | wc -l) charts drawn, each with the marks of its view (${WANT[*]})"
else
    bad "admin report:"; echo "$problems"
fi
title=$(sed -n 's/^title //p' "$TMP/admin.html.measure")
[[ $title == 'Loyalty report: CDNOW <b>&</b> "Co'"'"'s"' ]] && ok "the program name is escaped: it reads back as '$title'" ||
    bad "the title reads '$title'"
if grep -q '<b>&</b>' "$TMP/admin.html" || grep -qi '<script' "$TMP/admin.html"; then
    bad "unescaped text or a script in the report"
else
    ok "no unescaped text and no script in the report"
fi
paint "$TMP/admin.html" >"$TMP/admin.paint"
cat "$TMP/admin.paint"
# every chart has marks sampled, painted in their colour (nine in ten: a
# small line marker's centre may be blended with the line drawn through it)
if awk '$1 == "page" && $2 < 2 {exit 1} $1 != "page" && ($2 < 6 || 10 * $3 < 9 * $2) {exit 1}' "$TMP/admin.paint" &&
   [[ $(grep -vc '^page' "$TMP/admin.paint") -eq $(awk 'NF == 14 && $2 > 0' "$TMP/admin.html.measure" | wc -l) ]]; then
    ok "the screenshot is not blank ($(sed -n 's/^page //p' "$TMP/admin.paint") % ink), and every chart's sampled marks are painted in their colour: $(grep -v '^page' "$TMP/admin.paint" | awk '{printf "%s %d/%d ", $1, $3, $2}')"
else
    bad "a blank screenshot, or a chart whose marks are not painted:"; cat "$TMP/admin.paint"
fi
[[ -n ${REPORT_SCREENSHOT:-} ]] && cp "$TMP/admin.html.png" "$REPORT_SCREENSHOT"

# --- the negative control: the same check fails on a chart without marks ---
python3 - "$TMP/admin.html" "$TMP/broken.html" <<'PY'
import re, sys
html = open(sys.argv[1], encoding='utf-8').read()
a = html.index('<svg class="chart" id="palive-chart"')
b = html.index('</svg>', a)
open(sys.argv[2], 'w', encoding='utf-8').write(html[:a] + re.sub(r'<rect class="mark".*?</rect>', '', html[a:b]) + html[b:])
PY
measure "$TMP/broken.html"
if check_charts "$TMP/broken.html" "${WANT[@]}" >/dev/null; then
    bad "the check passes a report whose P(alive) cells were taken out"
else
    ok "the check fails a report whose P(alive) cells were taken out: $(check_charts "$TMP/broken.html" "${WANT[@]}" | tr -s ' ' | tr '\n' ' ')"
fi

# --- as loyalty_analyst: the views only -----------------------------------
report loyalty_analyst $P "$TMP/analyst.html" -v holdout_end=$HOLDOUT_END
measure "$TMP/analyst.html"
if problems=$(check_charts "$TMP/analyst.html" "${WANT[@]:0:3}") &&
   grep -q '^holdout 0 .* 1 [0-9-]* [0-9-]* [0-9-]* [0-9-]*$' "$TMP/analyst.html.measure" &&
   grep -q 'this section needs loyalty_admin' "$TMP/analyst.html"; then
    ok "analyst report: the three charts of the views, and a note that the holdout section needs loyalty_admin"
else
    bad "analyst report:"; echo "$problems"; cat "$TMP/analyst.html.measure"
fi

# --- a program without data: notes, no broken SVG -------------------------
report loyalty_admin $EMPTY "$TMP/empty.html"
measure "$TMP/empty.html"
if [[ $(grep -c '^[a-z]* 0 0 0 0 0 0 0 0 1 ' "$TMP/empty.html.measure") -eq 4 ]] && ! grep -q '<svg' "$TMP/empty.html"; then
    ok "a program without data: four no-data notes, no SVG"
else
    bad "a program without data:"; cat "$TMP/empty.html.measure"
fi

# --- an unknown program fails ---------------------------------------------
if report loyalty_admin 999 "$TMP/none.html" >"$TMP/none.out" 2>&1; then
    bad "a report of an unknown program succeeded"
elif grep -q 'program 999 does not exist or is not visible' "$TMP/none.out"; then
    ok "an unknown program fails: $(grep -m1 ERROR "$TMP/none.out")"
else
    bad "an unknown program: $(cat "$TMP/none.out")"
fi

exit $fail
