-- Suspected label errors of every version, most likely first, with class names.
WITH flagged AS (
    SELECT version, id, split, label, suggested_label, corrected_label, label_score, issue_rank, issue_kind
    FROM rows
    WHERE is_label_issue
)
SELECT
    f.version,
    f.issue_rank,
    f.id,
    f.split,
    f.label AS given_label,
    given.class_name AS given_name,
    f.suggested_label,
    suggested.class_name AS suggested_name,
    f.corrected_label,
    f.label_score,
    f.issue_kind
FROM flagged AS f
LEFT JOIN classes AS given ON given.version = f.version AND given.label = f.label
LEFT JOIN classes AS suggested ON suggested.version = f.version AND suggested.label = f.suggested_label
ORDER BY f.version, f.issue_rank
