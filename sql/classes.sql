-- Class index -> class name for every version (class names can differ between versions).
SELECT
    version,
    generate_subscripts(class_names, 1) - 1 AS label,
    unnest(class_names) AS class_name
FROM versions
