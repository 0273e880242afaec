-- Suspected label errors of every version of a multi-label dataset, most likely first: the given tags,
-- the tags flagged missing (the model is confident the row has them) and extra (confident it lacks them),
-- and the suggested tags (the given ones with those turned over), as indices and as names ("a, b").
WITH flagged AS (
    SELECT version, id, split, label, missing_tags, extra_tags, suggested_label, corrected_label, label_score, issue_rank, issue_kind
    FROM rows
    WHERE is_label_issue
)
SELECT
    f.version,
    f.issue_rank,
    f.id,
    f.split,
    f.label AS given_label,
    label_name(v.class_names, f.label) AS given_name,
    f.missing_tags,
    label_name(v.class_names, f.missing_tags) AS missing_names,
    f.extra_tags,
    label_name(v.class_names, f.extra_tags) AS extra_names,
    f.suggested_label,
    label_name(v.class_names, f.suggested_label) AS suggested_name,
    f.corrected_label,
    f.label_score,
    f.issue_kind
FROM flagged AS f
JOIN versions AS v ON v.version = f.version
ORDER BY f.version, f.issue_rank
