-- 010_reserved: PLACEHOLDER on branch issue-16 only, so that tern (which refuses gaps)
-- applies 012_service_reports here. Drop this file when merging: the real
-- 010 migration comes from another branch.
SELECT 1;

---- create above / drop below ----
SELECT 1;
