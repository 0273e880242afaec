-- The top suspected label errors of one version ($version), at most $limit rows.
SELECT issue_rank, id, given_name, suggested_name, round(label_score, 4) AS label_score, split
FROM issues
WHERE version = $version
ORDER BY issue_rank
LIMIT $limit
