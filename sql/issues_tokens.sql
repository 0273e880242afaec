-- Suspected tag errors of every version of a token dataset, most likely first: the token, its sentence and place in
-- it, and the given and suggested tags with their names.
SELECT
    r.version,
    r.issue_rank,
    r.id,
    r.split,
    r.sentence_id,
    r.position,
    r.token,
    r.label AS given_label,
    label_name(v.class_names, r.label) AS given_name,
    r.suggested_label,
    label_name(v.class_names, r.suggested_label) AS suggested_name,
    r.corrected_label,
    r.label_score,
    r.issue_kind
FROM rows AS r
JOIN versions AS v ON v.version = r.version
WHERE r.is_label_issue
ORDER BY r.version, r.issue_rank
