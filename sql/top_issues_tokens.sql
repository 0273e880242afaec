-- The top suspected tag errors of one version ($version) of a token dataset, at most $limit rows.
SELECT issue_rank, id, token, given_name, suggested_name, round(label_score, 4) AS label_score, sentence_id
FROM issues
WHERE version = $version
ORDER BY issue_rank
LIMIT $limit
