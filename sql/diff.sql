-- The rows that differ between two versions ($v1 before, $v2 after) of this dataset. `change`: added,
-- removed, relabeled (the effective label, coalesce(corrected_label, label), changed), newly_flagged,
-- no_longer_flagged; a relabeled row that also changed its flag is reported as relabeled.
WITH a AS (SELECT id, effective_label AS effective, is_label_issue FROM rows WHERE version = $v1),
     b AS (SELECT id, effective_label AS effective, is_label_issue FROM rows WHERE version = $v2),
     joined AS (
        SELECT
            coalesce(a.id, b.id) AS id,
            CASE
                WHEN a.id IS NULL THEN 'added'
                WHEN b.id IS NULL THEN 'removed'
                WHEN a.effective <> b.effective THEN 'relabeled'
                WHEN NOT a.is_label_issue AND b.is_label_issue THEN 'newly_flagged'
                WHEN a.is_label_issue AND NOT b.is_label_issue THEN 'no_longer_flagged'
            END AS change,
            a.effective AS label_before,
            b.effective AS label_after,
            a.is_label_issue AS flagged_before,
            b.is_label_issue AS flagged_after
        FROM a FULL OUTER JOIN b ON a.id = b.id
     )
SELECT * FROM joined WHERE change IS NOT NULL ORDER BY change, id
