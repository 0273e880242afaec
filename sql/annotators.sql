-- Several annotators a row (labelq audit --annotators), one row per version and annotator: labels given,
-- CROWDLAB's quality score, agreement with the consensus, CROWDLAB's weight, Dawid-Skene's accuracy.
SELECT
    CAST(regexp_extract(filename, '(^|[/\\])v([0-9]+)[/\\]annotators\.parquet$', 2) AS INTEGER) AS version,
    * EXCLUDE (filename)
FROM read_parquet('v*/annotators.parquet', union_by_name = true, filename = true)
ORDER BY version, quality
