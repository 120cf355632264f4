-- The loyalty report: one self-contained HTML file (inline SVG charts drawn
-- here, in SQL; no script, no library, no network) for one program.
--
--   psql -X -v program=ID [-v report_file=PATH] [-v holdout_end=YYYY-MM-DD] -f tools/report.sql
--
-- program      the program (required)
-- report_file  where the HTML goes (default loyalty-report.html, relative to
--              psql's working directory: psql writes it, not the server)
-- holdout_end  the end of the holdout period of the calibration-vs-holdout
--              section (default: the program's last day with a purchase)
--
-- Sections: (a) monthly KPIs from loyalty.kpi_monthly, (b) the RFM segment
-- mix from loyalty.member_rfm, (c) P(alive) by frequency and recency from
-- loyalty.member_predictions, (d) the latest model's calibration against the
-- holdout from loyalty.model_holdout, and the per-period tracking of
-- loyalty.model_tracking.
--
-- Roles: (a) to (c) read views only, so loyalty_analyst (or loyalty_admin)
-- can run the report; (d) calls model_holdout, which only loyalty_admin may
-- execute: for any other role the section says so and the rest is written.
-- A role bound to programs (loyalty.bind_role) sees only those.
--
-- Run it outside a transaction block (in autocommit, psql's default).
-- Everything happens in one transaction that is rolled back at the end: the
-- sections read one snapshot, and the helper functions (pg_temp) and settings
-- are gone afterwards, so tools/demo.sql can include this file mid-session.
-- Every text put into the page goes through pg_temp.h() (HTML escaping).
\set ON_ERROR_STOP 1
\if :{?program}
\else
\set program ''
\endif
\if :{?report_file}
\else
\set report_file 'loyalty-report.html'
\endif
\if :{?holdout_end}
\else
\set holdout_end ''
\endif
\set report_quiet :QUIET
\set QUIET on

BEGIN ISOLATION LEVEL REPEATABLE READ;
SET LOCAL search_path = pg_catalog, pg_temp;
SELECT set_config('report.program', :'program', true), set_config('report.holdout_end', :'holdout_end', true) \g /dev/null

-- the program must exist and be visible to the role
DO $$
DECLARE
    p text := current_setting('report.program');
BEGIN
    IF p !~ '^[0-9]+$' THEN
        RAISE EXCEPTION 'report.sql: no program given (got "%")', p USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Run psql -v program=ID -f tools/report.sql.';
    END IF;
    IF NOT EXISTS (SELECT FROM loyalty.kpi_summary WHERE program_id = p::bigint) THEN
        RAISE EXCEPTION 'report.sql: program % does not exist or is not visible to role %', p, current_user
            USING ERRCODE = 'no_data_found';
    END IF;
    IF current_setting('report.holdout_end') <> '' THEN
        PERFORM current_setting('report.holdout_end')::date;
    END IF;
END $$;

-- Helpers -------------------------------------------------------------------

-- HTML/SVG text escaping (text and attribute values)
CREATE FUNCTION pg_temp.h(s text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT replace(replace(replace(replace(replace(coalesce(s, ''), '&', '&amp;'), '<', '&lt;'), '>', '&gt;'),
                           '"', '&quot;'), '''', '&#39;')
$$;

-- a number with thousands separators and a fixed number of decimals
CREATE FUNCTION pg_temp.fmt(v numeric, digits int DEFAULT 0) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN v IS NULL THEN '–'
                ELSE to_char(round(v, digits), 'FM999,999,999,999,990' || CASE WHEN digits > 0 THEN '.' || repeat('0', digits) ELSE '' END) END
$$;

-- an SVG coordinate
CREATE FUNCTION pg_temp.c(v numeric) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT round(v, 1)::text
$$;

-- a "nice" tick step (1, 2, 2.5 or 5 times a power of ten) near raw
CREATE FUNCTION pg_temp.nice_step(raw numeric) RETURNS numeric LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    e numeric;
    f numeric;
BEGIN
    IF raw IS NULL OR raw <= 0 THEN
        RETURN 1;
    END IF;
    e := power(10::numeric, floor(log(10::numeric, raw)));
    f := raw / e;
    RETURN trim_scale(e * CASE WHEN f <= 1 THEN 1 WHEN f <= 2 THEN 2 WHEN f <= 2.5 THEN 2.5 WHEN f <= 5 THEN 5 ELSE 10 END);
END $$;

-- what a chart without data shows instead of an SVG
CREATE FUNCTION pg_temp.no_data(note text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT '<p class="nodata">' || pg_temp.h(note) || '</p>'
$$;

-- A chart over categories (months, buckets): bars and/or lines with points.
-- series: [{"name": ..., "color": ..., "kind": "bar"|"line", "values": [...],
-- "unit": ...}], values aligned with x_labels (null: no value).  Every data
-- mark (bar, point) has class "mark" and its value in data-v.  marker_index:
-- a dashed vertical line before that category, labelled marker_label.
CREATE FUNCTION pg_temp.xy_chart(chart text, x_labels text[], x_title text, y_title text, series jsonb,
                                 marker_index int DEFAULT NULL, marker_label text DEFAULT NULL,
                                 width int DEFAULT 880, height int DEFAULT 260)
RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    ml numeric := 78;
    mr numeric := 16;
    mt numeric := 34;
    mb numeric := 50;
    pw numeric := width - ml - mr;
    ph numeric := height - mt - mb;
    n int := coalesce(array_length(x_labels, 1), 0);
    lo numeric;
    hi numeric;
    step numeric;
    digits int;
    band numeric;
    nbars int;
    bar_i int := 0;
    every int;
    maxlen int;
    s jsonb;
    v numeric;
    i int;
    x numeric;
    y numeric;
    y0 numeric;
    bw numeric;
    r numeric;
    t numeric;
    lx numeric := ml;
    path text;
    o text;
BEGIN
    SELECT min(e::numeric), max(e::numeric) INTO lo, hi
    FROM jsonb_array_elements(series) q(j), jsonb_array_elements_text(q.j -> 'values') e
    WHERE e IS NOT NULL;
    IF n = 0 OR lo IS NULL THEN
        RETURN pg_temp.no_data('No data.');
    END IF;
    lo := least(lo, 0);
    hi := greatest(hi, 0);
    IF hi = lo THEN
        hi := lo + 1;
    END IF;
    step := pg_temp.nice_step((hi - lo) / 5);
    lo := floor(lo / step) * step;
    hi := ceil(hi / step) * step;
    digits := scale(step);
    band := pw / n;
    SELECT count(*) INTO nbars FROM jsonb_array_elements(series) q(j) WHERE q.j ->> 'kind' = 'bar';

    o := format('<svg class="chart" id="%s" viewBox="0 0 %s %s" width="%s" height="%s" role="img" aria-label="%s">',
                pg_temp.h(chart), width, height, width, height, pg_temp.h(y_title || ' by ' || x_title));
    -- y grid, ticks and title
    t := lo;
    WHILE t <= hi + step / 1000 LOOP
        y := mt + ph - (t - lo) / (hi - lo) * ph;
        o := o || format('<line class="grid" x1="%s" x2="%s" y1="%s" y2="%s"/><text class="tick" x="%s" y="%s" text-anchor="end">%s</text>',
                         ml, ml + pw, pg_temp.c(y), pg_temp.c(y), ml - 6, pg_temp.c(y + 4), pg_temp.fmt(t, digits));
        t := t + step;
    END LOOP;
    o := o || format('<text class="axis-title" transform="translate(14 %s) rotate(-90)" text-anchor="middle">%s</text>',
                     pg_temp.c(mt + ph / 2), pg_temp.h(y_title));
    -- x labels, thinned so that they do not overlap
    SELECT max(length(l)) INTO maxlen FROM unnest(x_labels) l;
    every := greatest(1, ceil((coalesce(maxlen, 1) * 6.6 + 10) / band)::int);
    FOR i IN 1 .. n LOOP
        x := ml + (i - 0.5) * band;
        IF (i - 1) % every = 0 THEN
            o := o || format('<line class="axis" x1="%s" x2="%s" y1="%s" y2="%s"/><text class="tick" x="%s" y="%s" text-anchor="middle">%s</text>',
                             pg_temp.c(x), pg_temp.c(x), mt + ph, mt + ph + 4, pg_temp.c(x), mt + ph + 17, pg_temp.h(x_labels[i]));
        END IF;
    END LOOP;
    o := o || format('<line class="axis" x1="%s" x2="%s" y1="%s" y2="%s"/>', ml, ml + pw, mt + ph, mt + ph)
           || format('<text class="axis-title" x="%s" y="%s" text-anchor="middle">%s</text>', pg_temp.c(ml + pw / 2), height - 8, pg_temp.h(x_title));
    IF marker_index IS NOT NULL AND marker_index BETWEEN 1 AND n THEN
        x := ml + (marker_index - 1) * band;
        o := o || format('<line class="marker" x1="%s" x2="%s" y1="%s" y2="%s"/><text class="marker-label" x="%s" y="%s">%s</text>',
                         pg_temp.c(x), pg_temp.c(x), mt, mt + ph, pg_temp.c(x + 4), mt + 10, pg_temp.h(marker_label));
    END IF;
    y0 := mt + ph - (0 - lo) / (hi - lo) * ph;
    r := CASE WHEN n > 60 THEN 2 ELSE 3 END;
    FOR s IN SELECT q.j FROM jsonb_array_elements(series) q(j) LOOP
        -- legend entry
        IF s ->> 'kind' = 'bar' THEN
            o := o || format('<rect x="%s" y="8" width="12" height="12" fill="%s"/>', pg_temp.c(lx), pg_temp.h(s ->> 'color'));
        ELSE
            o := o || format('<line x1="%s" x2="%s" y1="14" y2="14" stroke="%s" stroke-width="2"/><circle cx="%s" cy="14" r="3" fill="%s"/>',
                             pg_temp.c(lx), pg_temp.c(lx + 16), pg_temp.h(s ->> 'color'), pg_temp.c(lx + 8), pg_temp.h(s ->> 'color'));
        END IF;
        o := o || format('<text class="legend" x="%s" y="18">%s</text>', pg_temp.c(lx + 21), pg_temp.h(s ->> 'name'));
        lx := lx + 36 + length(s ->> 'name') * 6.8;
        -- the marks
        path := '';
        IF s ->> 'kind' = 'bar' THEN
            bw := band * 0.72 / nbars;
        END IF;
        FOR i IN 1 .. n LOOP
            v := (s -> 'values' ->> (i - 1))::numeric;
            IF v IS NULL THEN
                CONTINUE;
            END IF;
            y := mt + ph - (v - lo) / (hi - lo) * ph;
            IF s ->> 'kind' = 'bar' THEN
                x := ml + (i - 1) * band + band * 0.14 + bar_i * bw;
                o := o || format('<rect class="mark" data-v="%s" x="%s" y="%s" width="%s" height="%s" fill="%s"><title>%s</title></rect>',
                                 v, pg_temp.c(x), pg_temp.c(least(y, y0)), pg_temp.c(bw), pg_temp.c(abs(y0 - y)), pg_temp.h(s ->> 'color'),
                                 pg_temp.h(format('%s, %s: %s%s', x_labels[i], s ->> 'name', v, coalesce(' ' || (s ->> 'unit'), ''))));
            ELSE
                x := ml + (i - 0.5) * band;
                path := path || CASE WHEN path = '' OR (s -> 'values' ->> (i - 2)) IS NULL THEN 'M' ELSE 'L' END
                             || pg_temp.c(x) || ',' || pg_temp.c(y) || ' ';
            END IF;
        END LOOP;
        IF s ->> 'kind' = 'bar' THEN
            bar_i := bar_i + 1;
            CONTINUE;
        END IF;
        o := o || format('<path class="line" d="%s" stroke="%s"%s/>', rtrim(path), pg_temp.h(s ->> 'color'),
                         CASE WHEN s ->> 'dash' IS NOT NULL THEN ' stroke-dasharray="' || pg_temp.h(s ->> 'dash') || '"' ELSE '' END);
        FOR i IN 1 .. n LOOP
            v := (s -> 'values' ->> (i - 1))::numeric;
            IF v IS NULL THEN
                CONTINUE;
            END IF;
            o := o || format('<circle class="mark" data-v="%s" cx="%s" cy="%s" r="%s" fill="%s"><title>%s</title></circle>',
                             v, pg_temp.c(ml + (i - 0.5) * band), pg_temp.c(mt + ph - (v - lo) / (hi - lo) * ph), r, pg_temp.h(s ->> 'color'),
                             pg_temp.h(format('%s, %s: %s%s', x_labels[i], s ->> 'name', v, coalesce(' ' || (s ->> 'unit'), ''))));
        END LOOP;
    END LOOP;
    RETURN o || '</svg>';
END $$;

-- Horizontal bars, one per label, with a text at the end of each bar.
CREATE FUNCTION pg_temp.hbar_chart(chart text, labels text[], vals numeric[], value_texts text[], x_title text,
                                   color text, width int DEFAULT 880)
RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    ml numeric := 170;
    mr numeric;
    mt numeric := 10;
    mb numeric := 44;
    row_h numeric := 28;
    n int := coalesce(array_length(labels, 1), 0);
    pw numeric;
    ph numeric := n * row_h;
    hi numeric;
    step numeric;
    t numeric;
    x numeric;
    y numeric;
    w numeric;
    o text;
BEGIN
    SELECT max(v) INTO hi FROM unnest(vals) v;
    IF n = 0 OR hi IS NULL THEN
        RETURN pg_temp.no_data('No data.');
    END IF;
    -- room for the longest text after a bar
    SELECT 16 + 6.4 * coalesce(max(length(vt.s)), 0) INTO mr FROM unnest(value_texts) vt(s);
    pw := width - ml - mr;
    step := pg_temp.nice_step(greatest(hi, 1) / 5);
    hi := ceil(greatest(hi, 1) / step) * step;
    o := format('<svg class="chart" id="%s" viewBox="0 0 %s %s" width="%s" height="%s" role="img" aria-label="%s">',
                pg_temp.h(chart), width, mt + ph + mb, width, mt + ph + mb, pg_temp.h(x_title));
    t := 0;
    WHILE t <= hi + step / 1000 LOOP
        x := ml + t / hi * pw;
        o := o || format('<line class="grid" x1="%s" x2="%s" y1="%s" y2="%s"/><text class="tick" x="%s" y="%s" text-anchor="middle">%s</text>',
                         pg_temp.c(x), pg_temp.c(x), mt, mt + ph, pg_temp.c(x), mt + ph + 16, pg_temp.fmt(t, scale(step)));
        t := t + step;
    END LOOP;
    FOR i IN 1 .. n LOOP
        y := mt + (i - 1) * row_h;
        w := greatest(vals[i], 0) / hi * pw;
        o := o || format('<text class="label" x="%s" y="%s" text-anchor="end">%s</text>', ml - 8, pg_temp.c(y + row_h / 2 + 4), pg_temp.h(labels[i]))
               || format('<rect class="mark" data-v="%s" x="%s" y="%s" width="%s" height="%s" fill="%s"><title>%s</title></rect>',
                         vals[i], ml, pg_temp.c(y + 4), pg_temp.c(w), row_h - 8, pg_temp.h(color),
                         pg_temp.h(labels[i] || ': ' || value_texts[i]))
               || format('<text class="value" x="%s" y="%s">%s</text>', pg_temp.c(ml + w + 6), pg_temp.c(y + row_h / 2 + 4), pg_temp.h(value_texts[i]));
    END LOOP;
    o := o || format('<line class="axis" x1="%s" x2="%s" y1="%s" y2="%s"/>', ml, ml, mt, mt + ph)
           || format('<text class="axis-title" x="%s" y="%s" text-anchor="middle">%s</text>', pg_temp.c(ml + pw / 2), mt + ph + mb - 6, pg_temp.h(x_title));
    RETURN o || '</svg>';
END $$;

-- A colour of the sequential scale (yellow, green, blue) for v in [0, 1]
CREATE FUNCTION pg_temp.seq_color(v numeric) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    WITH s(p, r, g, b) AS (VALUES (0.0, 255, 255, 217), (0.25, 199, 233, 180), (0.5, 65, 182, 196), (0.75, 34, 94, 168), (1.0, 8, 29, 88)),
    k AS (SELECT least(greatest(coalesce(v, 0), 0), 1) AS v),
    lo AS (SELECT s.* FROM s, k WHERE s.p <= k.v ORDER BY s.p DESC LIMIT 1),
    hi AS (SELECT s.* FROM s, k WHERE s.p >= k.v ORDER BY s.p LIMIT 1)
    SELECT format('#%s%s%s',
                  lpad(to_hex(round(lo.r + (hi.r - lo.r) * f)::int), 2, '0'),
                  lpad(to_hex(round(lo.g + (hi.g - lo.g) * f)::int), 2, '0'),
                  lpad(to_hex(round(lo.b + (hi.b - lo.b) * f)::int), 2, '0'))
    FROM lo, hi, k, LATERAL (SELECT CASE WHEN hi.p = lo.p THEN 0 ELSE (k.v - lo.p) / (hi.p - lo.p) END AS f) ff
$$;

-- A heatmap of values in [0, 1]: cells [{"r": row, "c": column (1-based),
-- "v": value, "n": members}]; each drawn cell has class "mark".  Cells
-- without data are drawn as a pale background, not as marks.
CREATE FUNCTION pg_temp.heatmap(chart text, row_labels text[], col_labels text[], cells jsonb,
                                row_title text, col_title text, value_title text)
RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    nr int := coalesce(array_length(row_labels, 1), 0);
    nc int := coalesce(array_length(col_labels, 1), 0);
    ml numeric := 96;
    mt numeric := 10;
    mb numeric := 48;
    cw numeric := 82;
    ch numeric := 38;
    lx numeric;
    width numeric;
    height numeric;
    cell jsonb;
    v numeric;
    x numeric;
    y numeric;
    o text;
BEGIN
    IF nr = 0 OR nc = 0 OR jsonb_array_length(coalesce(cells, '[]')) = 0 THEN
        RETURN pg_temp.no_data('No data.');
    END IF;
    lx := ml + nc * cw + 36;
    width := lx + 90;
    height := mt + nr * ch + mb;
    o := format('<svg class="chart" id="%s" viewBox="0 0 %s %s" width="%s" height="%s" role="img" aria-label="%s">',
                pg_temp.h(chart), width, height, width, height, pg_temp.h(value_title || ' by ' || row_title || ' and ' || col_title))
         || format('<rect class="empty" x="%s" y="%s" width="%s" height="%s"/>', ml, mt, nc * cw, nr * ch);
    FOR i IN 1 .. nr LOOP
        o := o || format('<text class="tick" x="%s" y="%s" text-anchor="end">%s</text>', ml - 8, pg_temp.c(mt + (i - 0.5) * ch + 4), pg_temp.h(row_labels[i]));
    END LOOP;
    FOR i IN 1 .. nc LOOP
        o := o || format('<text class="tick" x="%s" y="%s" text-anchor="middle">%s</text>', pg_temp.c(ml + (i - 0.5) * cw), mt + nr * ch + 16, pg_temp.h(col_labels[i]));
    END LOOP;
    FOR cell IN SELECT e FROM jsonb_array_elements(cells) e LOOP
        v := (cell ->> 'v')::numeric;
        x := ml + ((cell ->> 'c')::int - 1) * cw;
        y := mt + ((cell ->> 'r')::int - 1) * ch;
        o := o || format('<rect class="mark" data-v="%s" x="%s" y="%s" width="%s" height="%s" fill="%s"><title>%s</title></rect>',
                         v, pg_temp.c(x + 1), pg_temp.c(y + 1), cw - 2, ch - 2, pg_temp.seq_color(v),
                         pg_temp.h(format('%s %s, %s %s: %s %s (%s members)', row_title, row_labels[(cell ->> 'r')::int], col_title,
                                          col_labels[(cell ->> 'c')::int], value_title, v, cell ->> 'n')))
               || format('<text class="cell%s" x="%s" y="%s" text-anchor="middle">%s</text><text class="cell-n%s" x="%s" y="%s" text-anchor="middle">n=%s</text>',
                         CASE WHEN v > 0.55 THEN ' dark' ELSE '' END, pg_temp.c(x + cw / 2), pg_temp.c(y + 17), to_char(v, 'FM0.00'),
                         CASE WHEN v > 0.55 THEN ' dark' ELSE '' END, pg_temp.c(x + cw / 2), pg_temp.c(y + 30), pg_temp.fmt((cell ->> 'n')::numeric));
    END LOOP;
    o := o || format('<text class="axis-title" transform="translate(14 %s) rotate(-90)" text-anchor="middle">%s</text>',
                     pg_temp.c(mt + nr * ch / 2), pg_temp.h(row_title))
           || format('<text class="axis-title" x="%s" y="%s" text-anchor="middle">%s</text>', pg_temp.c(ml + nc * cw / 2), height - 8, pg_temp.h(col_title));
    -- legend: the scale from 0 (top: 1) with ticks
    o := o || format('<defs><linearGradient id="%s-scale" x1="0" x2="0" y1="1" y2="0">', pg_temp.h(chart));
    FOR i IN 0 .. 4 LOOP
        o := o || format('<stop offset="%s" stop-color="%s"/>', i * 0.25, pg_temp.seq_color(i * 0.25));
    END LOOP;
    o := o || format('</linearGradient></defs><rect x="%s" y="%s" width="14" height="%s" fill="url(#%s-scale)" stroke="#999"/>',
                     lx, mt, nr * ch, pg_temp.h(chart));
    FOR i IN 0 .. 4 LOOP
        o := o || format('<text class="tick" x="%s" y="%s">%s</text>', lx + 20, pg_temp.c(mt + nr * ch * (1 - i * 0.25) + 4), to_char(i * 0.25, 'FM0.00'));
    END LOOP;
    RETURN o || format('<text class="tick" x="%s" y="%s">%s</text>', lx - 2, mt + nr * ch + 16, pg_temp.h(value_title)) || '</svg>';
END $$;

-- One figure: a title, a subtitle, the chart (or its no-data note) and notes
CREATE FUNCTION pg_temp.figure(chart text, title text, subtitle text, body text, notes text DEFAULT '')
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT format('<figure data-chart="%s"><figcaption><h3>%s</h3><p class="sub">%s</p></figcaption>%s%s</figure>',
                  pg_temp.h(chart), pg_temp.h(title), pg_temp.h(subtitle), body, notes)
$$;

-- The page ------------------------------------------------------------------
\pset format unaligned
\pset tuples_only on
\o :report_file

-- head, and the program's current figures (loyalty.kpi_summary)
SELECT format($h$<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>%s</title>
<style>
body { font-family: "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; color: #1f2937; margin: 0; background: #f8fafc; }
main { max-width: 940px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 36px 0 8px; border-bottom: 2px solid #e2e8f0; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 0; } p.sub { margin: 2px 0 8px; color: #64748b; font-size: 13px; }
.meta { color: #64748b; font-size: 13px; margin: 0 0 16px; }
figure { background: #fff; border: 1px solid #e2e8f0; border-radius: 6px; margin: 14px 0; padding: 14px 14px 8px; }
svg.chart { display: block; max-width: 100%%; height: auto; font-size: 11px; }
svg .grid { stroke: #e5e7eb; } svg .axis { stroke: #6b7280; } svg .tick { fill: #4b5563; font-size: 11px; }
svg .axis-title { fill: #374151; font-size: 12px; } svg .legend { fill: #374151; font-size: 12px; }
svg .label { fill: #1f2937; font-size: 12px; } svg .value { fill: #374151; font-size: 11px; }
svg .line { fill: none; stroke-width: 2; } svg .marker { stroke: #9ca3af; stroke-dasharray: 4 3; } svg .marker-label { fill: #6b7280; font-size: 11px; }
svg .empty { fill: #f1f5f9; } svg .cell { fill: #1f2937; font-size: 12px; font-weight: bold; } svg .cell-n { fill: #1f2937; font-size: 9px; }
svg .cell.dark, svg .cell-n.dark { fill: #fff; }
.tiles { display: grid; grid-template-columns: repeat(4, 1fr); gap: 10px; }
.tile { background: #fff; border: 1px solid #e2e8f0; border-radius: 6px; padding: 10px 12px; }
.tile b { display: block; font-size: 20px; } .tile span { color: #64748b; font-size: 12px; }
table { border-collapse: collapse; font-size: 13px; margin: 10px 0 6px; } th, td { padding: 3px 10px; text-align: right; border-bottom: 1px solid #e5e7eb; }
th { color: #475569; font-weight: 600; } tr.total td { font-weight: bold; border-top: 2px solid #cbd5e1; }
p.nodata { color: #92400e; background: #fffbeb; border: 1px dashed #f59e0b; padding: 18px; margin: 8px 0; text-align: center; }
p.note { color: #475569; font-size: 13px; margin: 6px 0; }
</style></head>
<body><main>
<h1>%s</h1>
<p class="meta">Program %s · currency %s · generated %s by role %s</p>
<div class="tiles">%s</div>$h$,
              pg_temp.h('Loyalty report: ' || k.program), pg_temp.h('Loyalty report: ' || k.program),
              k.program_id, pg_temp.h(k.currency), pg_temp.h(to_char(now(), 'YYYY-MM-DD HH24:MI TZ')), pg_temp.h(current_user),
              (SELECT string_agg(format('<div class="tile"><b>%s</b><span>%s</span></div>', pg_temp.h(v), pg_temp.h(l)), '' ORDER BY o)
               FROM (VALUES (1, pg_temp.fmt(k.members), 'members'),
                            (2, pg_temp.fmt(k.active_members_90d), 'bought in the last 90 days'),
                            (3, coalesce(pg_temp.fmt(100 * k.repeat_purchase_rate, 1) || ' %', '–'), 'buyers with a repeat purchase'),
                            (4, coalesce(pg_temp.fmt(k.avg_order_value, 2) || ' ' || k.currency, '–'), 'average order value'),
                            (5, pg_temp.fmt(k.points_issued), 'points issued'),
                            (6, pg_temp.fmt(k.points_redeemed), 'points redeemed'),
                            (7, pg_temp.fmt(k.points_outstanding), 'points outstanding'),
                            (8, pg_temp.fmt(k.liability, 2) || ' ' || k.currency, 'liability')) t(o, v, l)))
FROM loyalty.kpi_summary k WHERE k.program_id = :program;

-- (a) monthly KPIs: every month from the first to the last with activity
SELECT '<h2>Activity by month</h2>' ||
       CASE WHEN count(*) = 0 THEN pg_temp.figure('kpi', 'Monthly KPIs', 'loyalty.kpi_monthly', pg_temp.no_data('No activity yet: no purchases or points in this program.'))
       ELSE pg_temp.figure('kpi', 'Monthly KPIs', format('%s to %s, from loyalty.kpi_monthly', to_char(min(m.month), 'Mon YYYY'), to_char(max(m.month), 'Mon YYYY')),
           pg_temp.xy_chart('kpi-revenue', array_agg(to_char(m.month, 'YYYY-MM') ORDER BY m.month), 'month', 'revenue (' || max(s.currency) || ')',
               jsonb_build_array(jsonb_build_object('name', 'revenue (' || max(s.currency) || ')', 'color', '#2563eb', 'kind', 'bar', 'unit', max(s.currency),
                                                    'values', jsonb_agg(coalesce(k.revenue, 0) ORDER BY m.month))), height => 230)
           || pg_temp.xy_chart('kpi-members', array_agg(to_char(m.month, 'YYYY-MM') ORDER BY m.month), 'month', 'members, purchases',
               jsonb_build_array(jsonb_build_object('name', 'active members (bought in the month)', 'color', '#059669', 'kind', 'line',
                                                    'values', jsonb_agg(coalesce(k.active_members, 0) ORDER BY m.month)),
                                 jsonb_build_object('name', 'purchases', 'color', '#d97706', 'kind', 'line',
                                                    'values', jsonb_agg(coalesce(k.purchases, 0) ORDER BY m.month))), height => 230)
           || pg_temp.xy_chart('kpi-points', array_agg(to_char(m.month, 'YYYY-MM') ORDER BY m.month), 'month', 'points',
               jsonb_build_array(jsonb_build_object('name', 'points issued', 'color', '#7c3aed', 'kind', 'line', 'unit', 'points',
                                                    'values', jsonb_agg(coalesce(k.points_issued, 0) ORDER BY m.month)),
                                 jsonb_build_object('name', 'points redeemed', 'color', '#db2777', 'kind', 'line', 'unit', 'points',
                                                    'values', jsonb_agg(coalesce(k.points_redeemed, 0) ORDER BY m.month))), height => 230))
       END
FROM (SELECT generate_series(min(month), max(month), interval '1 month')::date AS month
      FROM loyalty.kpi_monthly WHERE program_id = :program) m
LEFT JOIN loyalty.kpi_monthly k ON k.program_id = :program AND k.month = m.month
CROSS JOIN (SELECT currency FROM loyalty.kpi_summary WHERE program_id = :program) s;

-- (b) segment mix: members per RFM segment (loyalty.member_rfm, live)
SELECT '<h2>Segments</h2>' ||
       pg_temp.figure('segments', 'Members by RFM segment',
           'loyalty.member_rfm: recency, frequency and monetary quintiles within the program, of the members who bought; bar labels: members, share, total spend',
           CASE WHEN count(*) = 0 THEN pg_temp.no_data('No member has bought yet: no segments.')
           ELSE pg_temp.hbar_chart('segments-chart', array_agg(g.segment ORDER BY g.members DESC, g.segment),
                   array_agg(g.members ORDER BY g.members DESC, g.segment),
                   array_agg(format('%s (%s %%) · %s %s', pg_temp.fmt(g.members), pg_temp.fmt(100.0 * g.members / g.total, 1),
                                    pg_temp.fmt(g.monetary), g.currency) ORDER BY g.members DESC, g.segment),
                   'members', '#0891b2') END)
FROM (SELECT r.segment, count(*) AS members, sum(r.monetary) AS monetary, sum(count(*)) OVER () AS total,
             (SELECT currency FROM loyalty.kpi_summary WHERE program_id = :program) AS currency
      FROM loyalty.member_rfm r WHERE r.program_id = :program GROUP BY r.segment) g;

-- (c) P(alive) by frequency and recency (loyalty.member_predictions: the
-- latest fitted model).  Rows: repeat purchase days x (0 to 6, 7+, as in
-- loyalty.model_holdout); columns: t_x in eight equal ranges up to the
-- oldest customer age T; cell: the members' mean P(alive).
SELECT '<h2>Models</h2>' ||
       CASE WHEN w.n = 0
       THEN pg_temp.figure('palive', 'P(alive) by frequency and recency', 'loyalty.member_predictions',
                           pg_temp.no_data('No fitted model: loyalty.fit_models(program, calibration_end) fits one (loyalty_admin).'))
       ELSE pg_temp.figure('palive', 'P(alive) by frequency and recency',
           format('Mean probability that the members of each cell are still active, %s fitted %s on the purchases up to %s (time in %ss)',
                  w.model_name, to_char(w.fitted_at, 'YYYY-MM-DD HH24:MI'), w.calibration_end, w.time_unit),
           pg_temp.heatmap('palive-chart', ARRAY['0', '1', '2', '3', '4', '5', '6', '7+'],
                           (SELECT array_agg(format('%s–%s', (i * w.width)::text, ((i + 1) * w.width)::text) ORDER BY i) FROM generate_series(0, 7) i),
                           (SELECT jsonb_agg(jsonb_build_object('r', b.r, 'c', b.c, 'v', b.v, 'n', b.n) ORDER BY b.r, b.c)
                            FROM (SELECT least(p.repeat_purchases, 7) + 1 AS r, least(floor(p.t_x / w.width), 7) + 1 AS c,
                                         round(avg(p.p_alive), 4) AS v, count(*) AS n
                                  FROM loyalty.member_predictions p WHERE p.program_id = :program GROUP BY 1, 2) b),
                           'repeat purchase days x', format('t_x: %ss from the first to the last purchase', w.time_unit), 'P(alive)'),
           format('<p class="note">%s members in all. The rows are how often a member bought again in the calibration period, the columns how late (in %ss after the first purchase) they last bought; the customer age T runs up to %s %ss. %s</p>',
                  pg_temp.fmt(w.n), w.time_unit, pg_temp.fmt(w.max_age, 1), w.time_unit,
                  CASE w.model_name WHEN 'BG/NBD' THEN 'Under BG/NBD a member who never bought again (x = 0) cannot have left, so that row is 1.'
                       ELSE 'Under MBG/NBD a member who never bought again (x = 0) may have left too, more likely the longer ago the first purchase.' END))
       END
FROM (SELECT count(*) AS n, greatest(ceil(max(customer_age) / 8), 1) AS width, max(customer_age) AS max_age,
             max(time_unit) AS time_unit, max(calibration_end) AS calibration_end, max(fitted_at) AS fitted_at,
             CASE max(purchase_model) WHEN 'mbgnbd' THEN 'MBG/NBD' ELSE 'BG/NBD' END AS model_name
      FROM loyalty.member_predictions WHERE program_id = :program) w;

-- (d) Calibration against the holdout.  A function, so that the section
-- reads one model and one holdout end for all its charts: the conditional
-- expectation of loyalty.model_holdout, then the per-period tracking of
-- loyalty.model_tracking, both with the program's purchase model.  A
-- further chart of this section is one more block below.
CREATE FUNCTION pg_temp.section_holdout(program bigint, holdout_end_in text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    cal_end date;
    unit text;
    holdout_end date;
    o text;
    rows_ jsonb;
    tot record;
    marker int;
BEGIN
    SELECT max(calibration_end), max(time_unit) INTO cal_end, unit FROM loyalty.member_predictions p WHERE p.program_id = program;
    holdout_end := nullif(holdout_end_in, '')::date;
    IF holdout_end IS NULL THEN
        SELECT max(day) INTO holdout_end FROM loyalty.kpi_daily d WHERE d.program_id = program AND d.purchases > 0;
    END IF;
    o := '<h2>Calibration against holdout</h2>';
    IF NOT has_function_privilege('loyalty.model_holdout(bigint,date)', 'EXECUTE') THEN
        RETURN o || pg_temp.figure('holdout', 'Predicted against actual purchases in the holdout', 'loyalty.model_holdout',
                                   pg_temp.no_data(format('Role %s may not run loyalty.model_holdout: this section needs loyalty_admin.', current_user)));
    ELSIF cal_end IS NULL THEN
        RETURN o || pg_temp.figure('holdout', 'Predicted against actual purchases in the holdout', 'loyalty.model_holdout',
                                   pg_temp.no_data('No fitted model: nothing to validate.'));
    ELSIF holdout_end IS NULL OR holdout_end <= cal_end THEN
        RETURN o || pg_temp.figure('holdout', 'Predicted against actual purchases in the holdout', 'loyalty.model_holdout',
                                   pg_temp.no_data(format('No holdout period: the model is calibrated up to %s and %s.', cal_end,
                                                          CASE WHEN holdout_end IS NULL THEN 'there is no purchase'
                                                               ELSE 'the holdout would end on ' || holdout_end END)));
    END IF;

    -- the conditional expectation: mean predicted and actual purchase days
    -- in the holdout per customer, by repeat purchases in calibration
    CREATE TEMP TABLE report_holdout ON COMMIT DROP AS
    SELECT h.repeat_purchases, h.customers, h.predicted, h.actual, h.total_predicted, h.total_actual, h.n,
           CASE h.model WHEN 'mbgnbd' THEN 'MBG/NBD' ELSE 'BG/NBD' END AS model_name
    FROM loyalty.model_holdout(program, holdout_end) WITH ORDINALITY h(repeat_purchases, customers, predicted, actual,
                                                                          total_predicted, total_actual, model, chosen, n)
    WHERE h.chosen;
    SELECT jsonb_agg(to_jsonb(h) - 'n' - 'model_name' ORDER BY h.n) INTO rows_ FROM report_holdout h WHERE h.repeat_purchases <> 'all';
    SELECT * INTO tot FROM report_holdout h WHERE h.repeat_purchases = 'all';
    o := o || pg_temp.figure('holdout', 'Predicted against actual purchases in the holdout, by calibration frequency',
        format('%s (the program''s purchase model) calibrated on the purchases up to %s; holdout %s to %s (%s %ss); from loyalty.model_holdout',
               tot.model_name, cal_end, cal_end + 1, holdout_end, pg_temp.fmt((holdout_end - cal_end) / CASE unit WHEN 'week' THEN 7.0 ELSE 1 END, 1), unit),
        pg_temp.xy_chart('holdout-chart', (SELECT array_agg(e ->> 'repeat_purchases') FROM jsonb_array_elements(rows_) e),
            'repeat purchase days in the calibration period (x)', 'purchase days per customer',
            jsonb_build_array(
                jsonb_build_object('name', format('predicted (%s)', tot.model_name), 'color', '#d97706', 'kind', 'line', 'dash', '6 4', 'unit', 'per customer',
                                   'values', (SELECT jsonb_agg(e -> 'predicted') FROM jsonb_array_elements(rows_) e)),
                jsonb_build_object('name', 'actual', 'color', '#2563eb', 'kind', 'line', 'unit', 'per customer',
                                   'values', (SELECT jsonb_agg(e -> 'actual') FROM jsonb_array_elements(rows_) e))),
            height => 300),
        '<table><tr><th>repeat purchases in calibration</th><th>customers</th><th>predicted per customer</th><th>actual per customer</th><th>predicted in all</th><th>actual in all</th></tr>'
        || (SELECT string_agg(format('<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>',
                                     pg_temp.h(e ->> 'repeat_purchases'), pg_temp.fmt((e ->> 'customers')::numeric),
                                     pg_temp.fmt((e ->> 'predicted')::numeric, 3), pg_temp.fmt((e ->> 'actual')::numeric, 3),
                                     pg_temp.fmt((e ->> 'total_predicted')::numeric, 1), pg_temp.fmt((e ->> 'total_actual')::numeric)), '')
            FROM jsonb_array_elements(rows_) e)
        || format('<tr class="total"><td>all</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr></table>',
                  pg_temp.fmt(tot.customers), pg_temp.fmt(tot.predicted, 3), pg_temp.fmt(tot.actual, 3),
                  pg_temp.fmt(tot.total_predicted, 1), pg_temp.fmt(tot.total_actual))
        || format('<p class="note">In all, the model expected %s purchase days of these %s customers in the holdout and %s were seen (%s%s %%).</p>',
                  pg_temp.fmt(tot.total_predicted, 1), pg_temp.fmt(tot.customers), pg_temp.fmt(tot.total_actual),
                  CASE WHEN tot.total_actual >= tot.total_predicted THEN '+' ELSE '' END,
                  pg_temp.fmt(CASE WHEN tot.total_predicted > 0 THEN 100 * (tot.total_actual / tot.total_predicted - 1) END, 1)));

    -- tracking: actual against expected repeat purchases per period, with
    -- the program's purchase model
    SELECT jsonb_agg(to_jsonb(t) ORDER BY t.period) INTO rows_
    FROM loyalty.model_tracking(program, holdout_end) t WHERE t.chosen;
    IF rows_ IS NULL THEN
        RETURN o || pg_temp.figure('tracking', 'Repeat purchases per period', 'loyalty.model_tracking', pg_temp.no_data('No data.'));
    END IF;
    -- the holdout starts at the first period after the calibration end
    SELECT min(n) INTO marker FROM jsonb_array_elements(rows_) WITH ORDINALITY e(x, n) WHERE (e.x ->> 'holdout')::boolean;
    o := o || pg_temp.figure('tracking', 'Repeat purchases per period: actual against expected',
        format('%s''s expected repeat purchases of the calibration customers against those seen, per %s, up to %s; from loyalty.model_tracking',
               tot.model_name, unit, holdout_end),
        pg_temp.xy_chart('tracking-chart', (SELECT array_agg(e ->> 'period_start') FROM jsonb_array_elements(rows_) e),
            format('%s starting', unit), 'repeat purchases',
            jsonb_build_array(
                jsonb_build_object('name', 'expected', 'color', '#d97706', 'kind', 'line', 'dash', '6 4',
                                   'values', (SELECT jsonb_agg(e -> 'expected') FROM jsonb_array_elements(rows_) e)),
                jsonb_build_object('name', 'actual', 'color', '#2563eb', 'kind', 'line',
                                   'values', (SELECT jsonb_agg(e -> 'actual') FROM jsonb_array_elements(rows_) e))),
            marker, 'holdout →', height => 280)
        || pg_temp.xy_chart('tracking-cumulative-chart', (SELECT array_agg(e ->> 'period_start') FROM jsonb_array_elements(rows_) e),
               format('%s starting', unit), 'cumulative repeat purchases',
               jsonb_build_array(
                   jsonb_build_object('name', 'expected, cumulative', 'color', '#d97706', 'kind', 'line', 'dash', '6 4',
                                      'values', (SELECT jsonb_agg(e -> 'cumulative_expected') FROM jsonb_array_elements(rows_) e)),
                   jsonb_build_object('name', 'actual, cumulative', 'color', '#2563eb', 'kind', 'line',
                                      'values', (SELECT jsonb_agg(e -> 'cumulative_actual') FROM jsonb_array_elements(rows_) e))),
               marker, 'holdout →', height => 280));
    RETURN o;
END $$;

SELECT pg_temp.section_holdout(:program, :'holdout_end');

SELECT '<p class="note">Written by tools/report.sql of the loyalty extension: every number and chart comes from the views named under each chart.</p></main></body></html>';

\o
\pset format aligned
\pset tuples_only off
ROLLBACK;
\set QUIET :report_quiet
\warn 'report.sql: wrote' :report_file
