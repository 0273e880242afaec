-- The columns a version keeps apart from data/ in one group file (payload.parquet: the inputs;
-- soft_labels.parquet: the soft labels), by version and id. labelq.sql puts each group file's name in.
SELECT
    CAST(regexp_extract(filename, '(^|[/\\])v([0-9]+)[/\\][a-z_]+[.]parquet$', 2) AS INTEGER) AS group_version,
    * EXCLUDE (filename)
FROM read_parquet('v*/column_group.parquet', union_by_name = true, filename = true)
