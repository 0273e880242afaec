-- The most common tag errors of a token dataset, every version: a word (lower-cased) given one tag where labelq
-- suggests another, counted over the flagged tokens (as cleanlab's token_classification common_label_issues).
SELECT
    r.version,
    lower(r.token) AS word,
    label_name(v.class_names, r.label) AS given_name,
    label_name(v.class_names, r.suggested_label) AS suggested_name,
    count(*) AS n_flagged
FROM rows AS r
JOIN versions AS v ON v.version = r.version
WHERE r.is_label_issue
GROUP BY r.version, lower(r.token), r.label, r.suggested_label, v.class_names
ORDER BY r.version, n_flagged DESC, word
