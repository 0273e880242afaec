-- Sets of exact and near duplicate rows (labelq.detect.neighbors), one row per version and set: its ids,
-- size, splits, labels and class names. leak: the set spans more than one split (a row of the test set
-- has a copy in training); conflict: its rows carry more than one label.
SELECT
    r.version,
    r.near_duplicate_set AS ids,
    count(*) AS n_rows,
    list(DISTINCT r.split ORDER BY r.split) AS splits,
    list(DISTINCT r.label ORDER BY r.label) AS labels,
    list(DISTINCT label_name(v.class_names, r.label) ORDER BY label_name(v.class_names, r.label)) AS class_names,  -- multi-label: "a, b" a tag set
    count(DISTINCT r.split) > 1 AS leak,
    count(DISTINCT r.label) > 1 AS conflict
FROM rows AS r
JOIN versions AS v ON v.version = r.version
WHERE r.is_near_duplicate
GROUP BY r.version, r.near_duplicate_set
ORDER BY r.version, leak DESC, conflict DESC, n_rows DESC, ids
