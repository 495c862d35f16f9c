-- 010_reserved: PLACEHOLDER on branch issue-17 only. Migration 010 is
-- 010_vpn.sql on another branch; tern refuses a gap in the numbering, so this
-- empty file stands in for it until that branch is merged. DELETE this file
-- when merging issue-17 after 010_vpn.sql (two 010 files fail to load).
SELECT 1;
---- create above / drop below ----
SELECT 1;
