-- One row per recorded audit run (history/*.json, written by labelq.history), oldest first.
SELECT *
FROM read_json('history/*.json', union_by_name = true, format = 'auto')
ORDER BY finished_at, run_id
