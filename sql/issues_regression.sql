-- Suspected errors in a regression target, every version, most likely first: the given value, the suggested
-- value (the out-of-sample prediction) and the residual (given - suggested).
SELECT
    version,
    issue_rank,
    id,
    split,
    label AS given_value,
    suggested_label AS suggested_value,
    label - suggested_label AS residual,
    corrected_label AS corrected_value,
    label_score,
    issue_kind
FROM rows
WHERE is_label_issue
ORDER BY version, issue_rank
