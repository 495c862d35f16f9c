-- Issue 21: the audit chain covers every column and is anchored in Raft.
--
-- max_id: the highest cluster_audit_events.id chained so far (kept by the
-- chainer). A Raft checkpoint records it with {seq, hash}; a row at or before
-- the checkpoint's seq with a higher id was inserted after the checkpoint, so
-- rows deleted and replaced behind the checkpoint are named exactly.
--
-- v2_from: the first seq hashed with event format 2 (every column, including
-- id, organization_id, fence_epoch and the raw risk value). Rows chained before
-- this migration keep their format-1 hashes. The first Raft checkpoint copies
-- the value and the Raft copy is what verification trusts afterwards, so
-- raising it later in PostgreSQL cannot downgrade rows to format 1.
ALTER TABLE audit_chain_head ADD COLUMN max_id bigint NOT NULL DEFAULT 0;
ALTER TABLE audit_chain_head ADD COLUMN v2_from bigint NOT NULL DEFAULT 1;
UPDATE audit_chain_head SET v2_from = seq + 1,
    max_id = coalesce((SELECT max(id) FROM cluster_audit_events WHERE seq IS NOT NULL), 0);

---- create above / drop below ----
ALTER TABLE audit_chain_head DROP COLUMN v2_from;
ALTER TABLE audit_chain_head DROP COLUMN max_id;
