-- Several annotators a row (labelq audit --annotators), one row per version and pair of annotators who
-- labelled the same rows: how many rows they share, how often they agree, Cohen's kappa.
SELECT
    CAST(regexp_extract(filename, '(^|[/\\])v([0-9]+)[/\\]annotator_pairs\.parquet$', 2) AS INTEGER) AS version,
    * EXCLUDE (filename)
FROM read_parquet('v*/annotator_pairs.parquet', union_by_name = true, filename = true)
ORDER BY version, kappa
