-- The inputs (images, texts, features) of every version that stores them apart (payload.parquet), by version and id.
SELECT
    CAST(regexp_extract(filename, '[/\\]v([0-9]+)[/\\]payload[.]parquet', 1) AS INTEGER) AS payload_version,
    * EXCLUDE (filename)
FROM read_parquet('v*/payload.parquet', union_by_name = true, filename = true)
