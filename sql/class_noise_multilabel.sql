-- Per version and tag of a multi-label dataset: rows with the tag, flagged rows with it, the flagged
-- share, and the rows flagged missing the tag or holding it wrongly (extra).
WITH tagged AS (
    SELECT version, unnest(label) AS label, is_label_issue FROM rows
),
per_tag AS (
    SELECT version, label, count(*) AS n_rows, count(*) FILTER (WHERE is_label_issue) AS n_flagged FROM tagged GROUP BY version, label
),
missing AS (SELECT version, label, count(*) AS n FROM (SELECT version, unnest(missing_tags) AS label FROM rows) GROUP BY version, label),
extra AS (SELECT version, label, count(*) AS n FROM (SELECT version, unnest(extra_tags) AS label FROM rows) GROUP BY version, label)
SELECT
    c.version,
    c.label,
    c.class_name,
    coalesce(p.n_rows, 0) AS n_rows,
    coalesce(p.n_flagged, 0) AS n_flagged,
    round(coalesce(p.n_flagged, 0) / nullif(p.n_rows, 0), 4) AS flagged_rate,
    coalesce(m.n, 0) AS n_missing,
    coalesce(e.n, 0) AS n_extra
FROM classes AS c
LEFT JOIN per_tag AS p ON p.version = c.version AND p.label = c.label
LEFT JOIN missing AS m ON m.version = c.version AND m.label = c.label
LEFT JOIN extra AS e ON e.version = c.version AND e.label = c.label
ORDER BY c.version, c.label
