-- Revert memoriesdb:context_checked_setting from pg
-- Nothing: the SET privilege on memoriesdb.context_checked is the cluster's, like the roles,
-- and the other ledger databases of the cluster may still need it to deploy.
BEGIN;
COMMIT;
