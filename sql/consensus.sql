-- Several annotators a row (labelq audit --annotators), one row per version and item: the annotators'
-- majority label, CROWDLAB's consensus and its quality, the share of the row's annotators who gave it,
-- ActiveLab's score (low: one more label helps most) and Dawid-Skene's label (labelq.crowd).
WITH c AS (
    SELECT
        CAST(regexp_extract(filename, '(^|[/\\])v([0-9]+)[/\\]consensus\.parquet$', 2) AS INTEGER) AS version,
        * EXCLUDE (filename)
    FROM read_parquet('v*/consensus.parquet', union_by_name = true, filename = true)
)
SELECT
    c.*,
    v.class_names[c.majority_label + 1] AS majority_name,
    v.class_names[c.consensus_label + 1] AS consensus_name,
    v.class_names[c.dawid_skene_label + 1] AS dawid_skene_name
FROM c
JOIN versions AS v ON v.version = c.version
ORDER BY c.version, c.consensus_quality
