-- Per version and given class: rows, flagged rows, the flagged share, and where flagged rows should go.
WITH per_class AS (
    SELECT
        version,
        label,
        count(*) AS n_rows,
        count(*) FILTER (WHERE is_label_issue) AS n_flagged,
        mode(suggested_label) FILTER (WHERE is_label_issue) AS most_suggested
    FROM rows
    GROUP BY version, label
)
SELECT
    p.version,
    p.label,
    c.class_name,
    p.n_rows,
    p.n_flagged,
    round(p.n_flagged / p.n_rows, 4) AS flagged_rate,
    s.class_name AS most_suggested_name
FROM per_class AS p
LEFT JOIN classes AS c ON c.version = p.version AND c.label = p.label
LEFT JOIN classes AS s ON s.version = p.version AND s.label = p.most_suggested
ORDER BY p.version, p.label
