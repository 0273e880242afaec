-- The top suspected errors in a regression target of one version ($version), at most $limit rows.
SELECT issue_rank, id, round(given_value, 4) AS given_value, round(suggested_value, 4) AS suggested_value, round(residual, 4) AS residual,
    round(label_score, 4) AS label_score, split
FROM issues
WHERE version = $version
ORDER BY issue_rank
LIMIT $limit
