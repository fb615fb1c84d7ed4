-- Deploy memoriesdb:context_checked_setting to pg
-- requires: roles
-- Run once. memoriesdb.context_checked is where an API call notes the context it has
-- verified (memoriesdb_internal.context_user(), users.sql), so the rest of the call does
-- not verify the proof again. Every SECURITY DEFINER function a client may call resets it
-- on entry with a SET clause (SET memoriesdb.context_checked = ''). PostgreSQL 15 lets a
-- non-superuser attach a SET clause for a custom (placeholder) parameter to a function only
-- with the SET privilege on that parameter: the owner role, which owns those functions,
-- gets it here. Clients need nothing: any login may set a placeholder parameter, which is
-- why the clause resets it. The privilege is the cluster's, like the roles.
BEGIN;
GRANT SET ON PARAMETER memoriesdb.context_checked TO memoriesdb_owner;
COMMIT;
