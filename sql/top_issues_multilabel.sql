-- The top suspected label errors of one version ($version) of a multi-label dataset, at most $limit rows:
-- the tags flagged missing and extra (the given tags are in the issues view).
SELECT issue_rank, id, missing_names AS missing_tags, extra_names AS extra_tags, round(label_score, 4) AS label_score, split
FROM issues
WHERE version = $version
ORDER BY issue_rank
LIMIT $limit
