-- One row per published version of this dataset, from the versions' manifests.
SELECT
    version,
    parent_version,
    created_at,
    "rows",
    n_label_issues,
    round(n_label_issues / "rows", 4) AS issue_rate,
    num_label_issues_estimate,
    model,
    n_folds,
    seed,
    filter_by,
    auto_fix,
    n_corrected,
    content_hash,
    class_names,
    source
FROM read_json('v*/manifest.json', union_by_name = true)
ORDER BY version
