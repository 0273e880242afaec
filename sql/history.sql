-- One row per recorded audit run (the run.json written into each version by labelq.history), oldest first.
-- history_records: those records as an Arrow table, registered by labelq.sql.refresh_catalog.
SELECT *
FROM history_records
ORDER BY finished_at, run_id
