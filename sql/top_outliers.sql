-- The outliers of one version ($version), highest outlier score first; at most $limit rows.
SELECT id, split, class_name, outlier_score
FROM outliers
WHERE version = $version
LIMIT $limit
