-- Deploy memoriesdb:query_cache_entries to pg
-- requires: identity
-- requires: config
-- The query-vector cache (run once): its table, its private key, its settings. The functions:
-- query_cache.sql (cached_query_vector(), cache_query_vector(), clear_query_cache()).
--
-- An entry is (owner, digest) -> vector: digest = HMAC-SHA-256 under the private key below of
-- the owner (the context user), the model and the normalised query text. The text is never
-- stored; the same query of two users gives unrelated digests; without the key a digest cannot
-- be tested against a guess. Entries are the context user's own: no user ever reads, hits,
-- evicts or overwrites another's (a shared cache would be a hit/miss oracle, an occupancy side
-- channel and a way to poison another tenant's searches: README, "Query cache").
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

-- ipad/opad as in memoriesdb_internal.context_key (identity.sql): HMAC with the built-in sha256().
-- A key of its own (not the context key): rotating one does not touch the other.
CREATE TABLE memoriesdb_internal.query_cache_key (
  singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  ipad       bytea NOT NULL CHECK (octet_length(ipad) = 64),
  opad       bytea NOT NULL CHECK (octet_length(opad) = 64),
  created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE memoriesdb_internal.query_cache_key IS
  'Private: the key of the query cache''s digests, as its HMAC-SHA-256 pads (the key XOR 0x36 / 0x5c, zero-padded to 64 bytes; the key itself is not kept). Readable by the owner only; never audited. Replacing it (both pads together) makes every cached entry unreachable (they age out by LRU; or TRUNCATE memoriesdb_internal.query_cache), nothing else.';
ALTER TABLE memoriesdb_internal.query_cache_key ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY query_cache_key_owner ON memoriesdb_internal.query_cache_key TO memoriesdb_owner USING (true) WITH CHECK (true);
INSERT INTO memoriesdb_internal.query_cache_key (ipad, opad)
SELECT i, o FROM (SELECT public.gen_random_bytes(32) AS k) AS g
 CROSS JOIN LATERAL (
   SELECT string_agg(decode(lpad(to_hex(coalesce(CASE WHEN n < 32 THEN get_byte(g.k, n) END, 0) # 54), 2, '0'), 'hex'), ''::bytea ORDER BY n) AS i,
          string_agg(decode(lpad(to_hex(coalesce(CASE WHEN n < 32 THEN get_byte(g.k, n) END, 0) # 92), 2, '0'), 'hex'), ''::bytea ORDER BY n) AS o
     FROM generate_series(0, 63) AS n) AS pads;

CREATE TABLE memoriesdb_internal.query_cache (
  owner_id   uuid NOT NULL REFERENCES memoriesdb.users ON DELETE CASCADE,
  digest     bytea NOT NULL CHECK (octet_length(digest) = 32),
  model      text NOT NULL CHECK (length(model) BETWEEN 1 AND 200),
  vector     public.vector NOT NULL,
  used_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (owner_id, digest)
);
COMMENT ON TABLE memoriesdb_internal.query_cache IS
  'The query-vector cache: per user (owner_id, the context user that stored it), digest -> the vector its client''s provider made of the query. Never the query text (digest: HMAC-SHA-256 under memoriesdb_internal.query_cache_key of owner, model and the normalised text). At most query_cache_max_entries rows per owner, least recently used out. Through memoriesdb.cached_query_vector(), cache_query_vector(), clear_query_cache() only; under forced RLS, the owner role sees the context user''s rows only. Not audited: a cache, not a record.';
COMMENT ON COLUMN memoriesdb_internal.query_cache.owner_id IS 'The user whose searches the entry serves (the context user that stored it); only that user''s context reads, touches or evicts it.';
COMMENT ON COLUMN memoriesdb_internal.query_cache.digest IS 'HMAC-SHA-256 (query_cache_key) of owner_id, the model (length-prefixed) and the normalised query (memoriesdb_internal.normalise_query()).';
COMMENT ON COLUMN memoriesdb_internal.query_cache.model IS 'The embedding model named by the client (also inside the digest): kept to drop the entries of a retired model.';
COMMENT ON COLUMN memoriesdb_internal.query_cache.vector IS 'The vector the client''s provider made of the normalised query; dimension at most query_cache_max_dimensions.';
COMMENT ON COLUMN memoriesdb_internal.query_cache.used_at IS 'Last stored or hit (clock_timestamp()): the LRU order; eviction takes the oldest first.';
COMMENT ON COLUMN memoriesdb_internal.query_cache.created_at IS 'When the vector was stored (or last replaced).';
-- eviction: the owner's oldest entries, from the index
CREATE INDEX query_cache_lru ON memoriesdb_internal.query_cache (owner_id, used_at);
ALTER TABLE memoriesdb_internal.query_cache ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY query_cache_own ON memoriesdb_internal.query_cache TO memoriesdb_owner
  USING (owner_id = (SELECT memoriesdb.current_user_id())) WITH CHECK (owner_id = (SELECT memoriesdb.current_user_id()));
COMMENT ON POLICY query_cache_own ON memoriesdb_internal.query_cache IS
  'Even the functions (SECURITY DEFINER, as the owner) reach the context user''s entries only.';

INSERT INTO memoriesdb.config (key, value, description) VALUES
  ('query_cache_max_entries', '1000', 'the query-vector cache: entries kept per user (least recently used out); 0 turns the cache off (nothing stored, every lookup a miss)'),
  ('query_cache_max_dimensions', '4096', 'cache_query_vector(): the largest vector dimension accepted (MDB26 past it)'),
  ('query_cache_max_query_chars', '8000', 'cached_query_vector(), cache_query_vector(): the longest query accepted, in characters after normalisation (MDB26 past it)');

COMMIT;
