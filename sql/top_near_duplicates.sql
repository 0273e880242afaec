-- The first near-duplicate sets of one version ($version): leaks across splits, then conflicting labels, then the largest; at most $limit sets.
SELECT n_rows, ids, splits, class_names, leak, conflict
FROM near_duplicates
WHERE version = $version
LIMIT $limit
