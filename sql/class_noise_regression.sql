-- Per version and quintile of the given values of a regression target: its range, rows, flagged rows, the flagged
-- share and the mean absolute residual (given - suggested).
WITH ranged AS (
    SELECT version, label, suggested_label, is_label_issue, ntile(5) OVER (PARTITION BY version ORDER BY label) AS quintile
    FROM rows
)
SELECT
    version,
    quintile,
    min(label) AS low,
    max(label) AS high,
    count(*) AS n_rows,
    count(*) FILTER (WHERE is_label_issue) AS n_flagged,
    round(count(*) FILTER (WHERE is_label_issue) / count(*), 4) AS flagged_rate,
    avg(abs(label - suggested_label)) AS mean_absolute_residual
FROM ranged
GROUP BY version, quintile
ORDER BY version, quintile
