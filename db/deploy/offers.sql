-- Deploy memoriesdb:offers to pg
-- requires: memory_transfers
-- requires: memory_grants
-- requires: config
-- requires: login_bounds_config
-- Run once. Nothing appears in a user's account or searches unasked: a share or
-- a transfer from a sender the recipient has not accepted is written here, as an
-- offer, and memory_grants / memories.owner_id change only when the recipient
-- accepts it (api_sharing.sql). So every place a grant makes a memory visible
-- (the memories_visible policy, access_level(), the search helpers, memory_graph)
-- is unchanged: a pending offer is in none of them. Grants and transfers made
-- before this change stay in effect as they are.
-- The stamp and audit triggers of both tables: triggers.sql. Who may do what: privileges.sql
-- (no client role may select either table; they go through the offer functions).
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

CREATE TABLE memoriesdb.memory_offers (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  kind             text NOT NULL CHECK (kind IN ('share', 'transfer')),
  memory_id        uuid NOT NULL REFERENCES memoriesdb.memories ON DELETE CASCADE,
  sender_id        uuid NOT NULL REFERENCES memoriesdb.users,
  recipient_id     uuid NOT NULL REFERENCES memoriesdb.users,
  level            text NOT NULL,
  grant_expires_at timestamptz,
  note             text CHECK (length(note) <= 2000),
  offered_at       timestamptz NOT NULL,
  expires_at       timestamptz NOT NULL,
  created_at       timestamptz NOT NULL,
  created_by       uuid NOT NULL,
  updated_at       timestamptz NOT NULL,
  updated_by       uuid,
  CONSTRAINT memory_offers_one_per_kind UNIQUE (memory_id, recipient_id, kind),
  CHECK (sender_id <> recipient_id),
  CHECK ((kind = 'share' AND level IN ('read', 'write') AND note IS NULL)
      OR (kind = 'transfer' AND level = 'owner' AND grant_expires_at IS NULL)),
  CHECK (expires_at > offered_at)
);
COMMENT ON TABLE memoriesdb.memory_offers IS
  'Pending offers: a share (level read/write, grant_expires_at) or a transfer (level owner, note) that waits for the recipient''s accept_offer(); until then the recipient sees nothing of the memory and a transferred memory stays the sender''s. Rows leave on accept, decline, withdraw, unshare (share offers), or when the memory is forgotten or changes owner; the audit log keeps them. No client selects this table: offers() and offers_sent() show it without the note.';
COMMENT ON COLUMN memoriesdb.memory_offers.expires_at IS
  'The offer (not the grant) ends here: never accepted after it. offered_at + config offer_lifetime_seconds, or the grant''s own expiry when that is earlier.';
COMMENT ON COLUMN memoriesdb.memory_offers.note IS
  'The transfer''s note: sender-written text, so it is shown to the recipient only after acceptance (in provenance()), never in offers().';
CREATE INDEX memory_offers_recipient ON memoriesdb.memory_offers (recipient_id, expires_at);
CREATE INDEX memory_offers_sender ON memoriesdb.memory_offers (sender_id, recipient_id);

ALTER TABLE memoriesdb.memory_offers ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY memory_offers_owner ON memoriesdb.memory_offers TO memoriesdb_owner USING (true) WITH CHECK (true);

CREATE TABLE memoriesdb.accepted_senders (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id     uuid NOT NULL REFERENCES memoriesdb.users,
  sender_id   uuid NOT NULL REFERENCES memoriesdb.users,
  created_at  timestamptz NOT NULL,
  created_by  uuid NOT NULL,
  updated_at  timestamptz NOT NULL,
  updated_by  uuid,
  CONSTRAINT accepted_senders_once UNIQUE (user_id, sender_id),
  CHECK (user_id <> sender_id)
);
COMMENT ON TABLE memoriesdb.accepted_senders IS
  'The senders each user accepted once for all (accept_sender()): their shares and transfers to that user take effect at once, without an offer. forget_sender() removes one. No client selects this table: trusted_senders() shows a user its own.';

ALTER TABLE memoriesdb.accepted_senders ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY accepted_senders_owner ON memoriesdb.accepted_senders TO memoriesdb_owner USING (true) WITH CHECK (true);

INSERT INTO memoriesdb.config (key, value, description) VALUES
  ('offer_lifetime_seconds', '604800',
   'how long a share or transfer offer waits for the recipient (seconds; 7 days): an expired offer is never accepted'),
  ('offer_max_pending', '1000',
   'at most this many unexpired offers from one sender to one recipient (a flood of offers is refused, MDB12)');
COMMIT;
