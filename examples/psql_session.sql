-- A psql session with the MemoriesDB API (README). Run: psql -v ON_ERROR_STOP=1 -d memoriesdb -f examples/psql_session.sql
\set QUIET on
\pset footer off
-- provisioning, by a trusted backend (a login granted memoriesdb_backend): it creates each user,
-- then vouches for the new user (set_config, transaction-local) to mint the user's first key
SET ROLE memoriesdb_backend;
SELECT memoriesdb.create_user('ada-' || substr(md5(random()::text), 1, 6), 'Ada') AS ada \gset
SELECT memoriesdb.create_user('grace-' || substr(md5(random()::text), 1, 6), 'Grace') AS grace \gset
BEGIN;
SELECT set_config('app.current_user', :'ada', true) \g /dev/null
SELECT memoriesdb.create_api_key(:'ada') AS ada_key \gset
SELECT set_config('app.current_user', :'grace', true) \g /dev/null
SELECT memoriesdb.create_api_key(:'grace', now() + interval '30 days') AS grace_key \gset
COMMIT;

-- the clients: untrusted (memoriesdb_app); only an API key makes them a user. From a memoriesdb_app
-- login, set_config('app.current_user', <uuid>, true) alone is nobody.
SET ROLE memoriesdb_app;

-- every transaction says who it acts for; the context ends with the transaction
BEGIN;
SELECT memoriesdb.authenticate(:'ada_key') AS acting_as;
SELECT memoriesdb.remember('The Analytical Engine weaves algebraic patterns', '{"topic": "engines"}') AS m1 \gset
SELECT memoriesdb.remember('Notes on Bernoulli numbers') AS m2 \gset
SELECT memoriesdb.revise(:'m1', 'The Analytical Engine weaves algebraic patterns just as the Jacquard loom weaves flowers') AS revision;
SELECT memoriesdb.link(:'m2', :'m1', 'part_of') AS edge;
SELECT memoriesdb.share(:'m1', :'grace', 'read', now() + interval '7 days') AS offer_id \gset
SELECT id, revision, content, encode(content_hash, 'hex') AS sha256 FROM memoriesdb.recall(:'m1');
SELECT memoriesdb.verify(:'m1') AS hash_ok;
COMMIT;

-- the next transaction has no context: it sees nothing and cannot write
SELECT count(*) AS visible_without_context FROM memoriesdb.list_memories();

-- nothing appears in Grace's account unasked: Ada's share waits as an offer until Grace accepts it
BEGIN;
SELECT memoriesdb.authenticate(:'grace_key') \g /dev/null
SELECT count(*) AS visible_before_accepting FROM memoriesdb.list_memories();   -- 0
SELECT kind, sender = :'ada' AS from_ada, memory_id = :'m1' AS is_m1, level
  FROM memoriesdb.offers();                               -- who offers which memory, never its content
SELECT memoriesdb.accept_offer(:'offer_id') = :'m1' AS accepted;
SELECT memoriesdb.accept_sender(:'ada') AS accepts_ada;   -- once for all: Ada's next shares and transfers take effect at once
COMMIT;

BEGIN;
SELECT memoriesdb.authenticate(:'grace_key') \g /dev/null
SELECT count(*) AS visible FROM memoriesdb.list_memories();   -- 1: only what was shared with her (ids, no contents)
SELECT content FROM memoriesdb.recall(:'m1');             -- contents only through the API: a read on the access log
\set ON_ERROR_STOP 0
SELECT memoriesdb.revise(:'m1', 'vandalised');            -- refused: MDB04, read-only grant
\set ON_ERROR_STOP 1
ROLLBACK;

BEGIN;
SELECT memoriesdb.authenticate(:'ada_key');
SELECT outcome, function, actor = :'grace' AS by_grace, sqlstate
  FROM memoriesdb.access_history(:'m1');                  -- the access log: Grace's refusal outlived her rollback
SELECT memoriesdb.transfer(:'m2', :'grace', 'a gift') AS transfer_id;   -- at once: Grace accepted Ada as a sender
SELECT memoriesdb.forget(:'m1');
COMMIT;

BEGIN;
SELECT memoriesdb.authenticate(:'grace_key') \g /dev/null
SELECT key_prefix, expires_at > now() AS live FROM memoriesdb.api_keys_list();   -- her keys: revoke_api_key(id) ends one
SELECT event, actor = :'ada' AS by_ada, from_owner = :'ada' AS from_ada, to_owner = :'grace' AS to_grace, note
  FROM memoriesdb.provenance(:'m2');                      -- the chain of custody travels with it
COMMIT;
RESET ROLE;

-- the auditor checks the whole log
SET ROLE memoriesdb_auditor;
SELECT ok, rows_checked, seals_checked FROM memoriesdb.verify_audit_chain();
RESET ROLE;
