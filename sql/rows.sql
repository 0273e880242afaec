-- Every row of every published version; `version` comes from the folder v<NNNN> it was read from.
SELECT
    CAST(regexp_extract(filename, '(^|[/\\])v([0-9]+)[/\\]data[/\\][^/\\]*$', 2) AS INTEGER) AS version,
    * EXCLUDE (filename),
    coalesce(corrected_label, label) AS effective_label  -- the correction where there is one (labelq.schema.effective_label)
FROM read_parquet('v*/data/*.parquet', union_by_name = true, filename = true)
