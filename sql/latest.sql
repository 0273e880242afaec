-- The rows of the newest version.
SELECT *
FROM rows
WHERE version = (SELECT max(version) FROM versions)
