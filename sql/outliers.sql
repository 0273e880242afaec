-- Outliers (labelq.detect.neighbors) of every version, farthest from their neighbours first: the row,
-- its split, label and class name, and its outlier score (distance to its 10th nearest neighbour over
-- the dataset's median of it; 1.0 is a typical row).
SELECT
    r.version,
    r.id,
    r.split,
    r.label,
    label_name(v.class_names, r.label) AS class_name,  -- a multi-label row's tag names, "a, b"
    r.outlier_score
FROM rows AS r
JOIN versions AS v ON v.version = r.version
WHERE r.is_outlier
ORDER BY r.version, r.outlier_score DESC, r.id
