-- Per version: how its rows differ from its parent version's (the counts of diff.sql's changes).
WITH pairs AS (SELECT version, parent_version FROM versions WHERE parent_version IS NOT NULL),
     r AS (SELECT version, id, effective_label AS effective, is_label_issue FROM rows),
     before AS (SELECT p.version AS v, r.id, r.effective, r.is_label_issue FROM pairs p JOIN r ON r.version = p.parent_version),
     after AS (SELECT p.version AS v, r.id, r.effective, r.is_label_issue FROM pairs p JOIN r ON r.version = p.version),
     joined AS (
        SELECT coalesce(a.v, b.v) AS version, a.id AS id_before, b.id AS id_after, a.effective AS before, b.effective AS after,
               a.is_label_issue AS flagged_before, b.is_label_issue AS flagged_after
        FROM before a FULL OUTER JOIN after b ON a.v = b.v AND a.id = b.id
     )
SELECT
    j.version,
    any_value(p.parent_version) AS parent_version,
    count(*) FILTER (WHERE id_before IS NULL) AS added,
    count(*) FILTER (WHERE id_after IS NULL) AS removed,
    count(*) FILTER (WHERE id_before IS NOT NULL AND id_after IS NOT NULL AND before <> after) AS relabeled,
    count(*) FILTER (WHERE id_before IS NOT NULL AND id_after IS NOT NULL AND before = after AND NOT flagged_before AND flagged_after) AS newly_flagged,
    count(*) FILTER (WHERE id_before IS NOT NULL AND id_after IS NOT NULL AND before = after AND flagged_before AND NOT flagged_after) AS no_longer_flagged
FROM joined j JOIN pairs p ON p.version = j.version
GROUP BY j.version
ORDER BY j.version
