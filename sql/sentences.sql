-- A token dataset's sentences, every version: the text, its tokens and flagged tokens, and its score, its lowest
-- token's label score (cleanlab's token_classification get_label_quality_scores, method "min"); lowest first.
SELECT
    version,
    sentence_id,
    string_agg(token, ' ' ORDER BY position) AS text,
    count(*) AS n_tokens,
    count(*) FILTER (WHERE is_label_issue) AS n_flagged,
    list(position ORDER BY position) FILTER (WHERE is_label_issue) AS flagged_positions,
    min(label_score) AS sentence_score
FROM rows
GROUP BY version, sentence_id
ORDER BY version, sentence_score, sentence_id
