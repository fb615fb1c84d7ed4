-- Deploy memoriesdb:query_cache to pg
-- requires: query_cache_entries
-- requires: users
-- requires: context
-- requires: config
-- Live functions of the query-vector cache (issue 15, "A caching layer for query embeddings"):
-- a client that embeds a query first asks cached_query_vector(model, query); on a miss it embeds
-- the normalised query (normalise_query()) and stores it with cache_query_vector(model, query, v).
-- Entries are the context user's own (table, key and settings: query_cache_entries.sql).
-- Re-deployable (CREATE OR REPLACE only): change a function here with `sqitch rework query_cache`
-- after a tag. Who may execute what: privileges.sql.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

-- What two queries must share to share an entry. NFC (the same characters, however composed);
-- runs of white space (the Unicode White_Space characters) are one space, none at either end.
-- Case is kept: a cased model (OpenAI's, most multilingual ones) embeds "US" and "us", "Apple"
-- and "apple" differently, and a cache must never answer for a text the model was not given.
-- Clients embed this normalised text on a miss (the runner: search.normalise_query(), the same
-- rule), so a hit returns exactly the vector a miss would have made.
CREATE OR REPLACE FUNCTION memoriesdb_internal.normalise_query(query text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT pg_catalog.btrim(pg_catalog.regexp_replace(pg_catalog.normalize(query, 'NFC'),
           '[\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+', ' ', 'g'), ' ')
$$;
COMMENT ON FUNCTION memoriesdb_internal.normalise_query(text) IS
  'Internal: the query as the cache keys it: Unicode NFC, every run of white space (U+0009-000D, U+0020, U+0085, U+00A0, U+1680, U+2000-200A, U+2028, U+2029, U+202F, U+205F, U+3000) one space, trimmed. Case kept (cased models embed case). Clients embed this text on a miss.';

-- The digest of an entry: checks the inputs (MDB26), never sees another user.
CREATE OR REPLACE FUNCTION memoriesdb_internal.query_cache_digest(owner_id uuid, model text, query text) RETURNS bytea
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  q text;
  max_chars integer := coalesce(memoriesdb.setting('query_cache_max_query_chars')::integer, 8000);
  d bytea;
BEGIN
  IF model IS NULL OR length(model) NOT BETWEEN 1 AND 200 OR model ~ '[[:cntrl:]]' THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB26', MESSAGE = 'invalid embedding model name',
      DETAIL = CASE WHEN model IS NULL THEN 'model is NULL'
                    ELSE format('model has %s characters%s', length(model),
                                CASE WHEN model ~ '[[:cntrl:]]' THEN ', including control characters' ELSE '' END) END,
      HINT = 'name the model that made (or will make) the vector: 1 to 200 characters, no control characters, e.g. ''ollama:all-minilm''';
  END IF;
  IF query IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB26', MESSAGE = 'query is NULL',
      HINT = 'pass the query text the vector is (or will be) the embedding of';
  END IF;
  q := memoriesdb_internal.normalise_query(query);
  IF q = '' THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB26', MESSAGE = 'empty query',
      DETAIL = 'the query is empty once white space is collapsed and trimmed',
      HINT = 'an empty query is neither looked up nor cached';
  END IF;
  IF length(q) > max_chars THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB26', MESSAGE = 'query too long for the query cache',
      DETAIL = format('%s characters after normalisation; at most %s (setting query_cache_max_query_chars)', length(q), max_chars),
      HINT = 'embed such a query without the cache';
  END IF;
  -- HMAC-SHA-256 (RFC 2104) under the cache key: owner | length of the model | model | text,
  -- so no two (owner, model, text) give the same message
  SELECT pg_catalog.sha256(k.opad OPERATOR(pg_catalog.||) pg_catalog.sha256(k.ipad OPERATOR(pg_catalog.||)
           pg_catalog.convert_to(pg_catalog.format('query-cache|%s|%s|%s|%s', owner_id, length(model), model, q), 'UTF8')))
    INTO d FROM memoriesdb_internal.query_cache_key AS k;
  RETURN d;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.query_cache_digest(uuid, text, text) IS
  'Internal: the key of a cache entry: HMAC-SHA-256 under memoriesdb_internal.query_cache_key of owner_id, the model (length-prefixed) and normalise_query(query). Refuses (MDB26) a NULL, empty or control-character model or one longer than 200 characters, a NULL query, one empty after normalisation or longer than query_cache_max_query_chars.';

CREATE OR REPLACE FUNCTION memoriesdb.cached_query_vector(model text, query text) RETURNS public.vector
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
DECLARE
  uid uuid := memoriesdb_internal.require_user();
  d bytea := memoriesdb_internal.query_cache_digest(uid, model, query);
  v public.vector;
BEGIN
  IF coalesce(memoriesdb.setting('query_cache_max_entries')::bigint, 0) <= 0 THEN
    RETURN NULL;   -- the cache is off
  END IF;
  SELECT c.vector INTO v FROM memoriesdb_internal.query_cache AS c WHERE c.owner_id = uid AND c.digest = d;
  IF v IS NOT NULL AND current_setting('transaction_read_only') = 'off' THEN
    -- the LRU touch; an entry another transaction is touching (or evicting) right now is left
    -- to it: a hit never waits
    UPDATE memoriesdb_internal.query_cache AS c SET used_at = clock_timestamp()
     WHERE (c.owner_id, c.digest) IN (SELECT l.owner_id, l.digest FROM memoriesdb_internal.query_cache AS l
                                       WHERE l.owner_id = uid AND l.digest = d FOR UPDATE SKIP LOCKED);
  END IF;
  RETURN v;
END
$$;
COMMENT ON FUNCTION memoriesdb.cached_query_vector(text, text) IS
  'The vector the context user cached for this model and query (normalised: normalise_query()), or NULL (a miss; also when query_cache_max_entries is 0). A hit becomes the most recently used entry (not on a read-only standby). Only the caller''s own entries: another user''s identical query never hits. MDB01/MDB02 without a user context; MDB26 for a bad model name or query.';

CREATE OR REPLACE FUNCTION memoriesdb.cache_query_vector(model text, query text, v public.vector) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
DECLARE
  uid uuid := memoriesdb_internal.require_user();
  d bytea := memoriesdb_internal.query_cache_digest(uid, model, query);
  max_entries bigint := coalesce(memoriesdb.setting('query_cache_max_entries')::bigint, 0);
  max_dims integer := coalesce(memoriesdb.setting('query_cache_max_dimensions')::integer, 4096);
  n bigint;
BEGIN
  IF v IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB26', MESSAGE = 'vector is NULL',
      HINT = 'pass the embedding of the query made by the model named';
  END IF;
  IF public.vector_dims(v) > max_dims THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB26', MESSAGE = 'vector too large for the query cache',
      DETAIL = format('%s dimensions; at most %s (setting query_cache_max_dimensions)', public.vector_dims(v), max_dims),
      HINT = 'search with such a vector without the cache';
  END IF;
  IF public.vector_norm(v) = 0 OR public.vector_norm(v) = 'Infinity'::float8 THEN
    RAISE EXCEPTION USING ERRCODE = 'MDB26', MESSAGE = 'vector has no direction',
      DETAIL = format('its L2 norm is %s', public.vector_norm(v)),
      HINT = 'a zero (or overflowing) vector is no embedding: check the provider''s answer';
  END IF;
  IF max_entries <= 0 OR current_setting('transaction_read_only') = 'on' THEN
    RETURN false;   -- the cache is off, or this is a standby: nothing stored
  END IF;

  INSERT INTO memoriesdb_internal.query_cache AS c (owner_id, digest, model, vector)
  VALUES (uid, d, model, v)
  ON CONFLICT (owner_id, digest) DO UPDATE SET vector = excluded.vector, used_at = clock_timestamp(), created_at = now();

  -- The bound: the caller's least recently used entries out, down to the bound (all the excess,
  -- not one), but never the one just stored. SKIP LOCKED: an entry another transaction holds (it
  -- is touching or evicting it) is not waited for: eviction never waits, concurrent stores each
  -- evict different entries, and a store waits only to replace the very entry another transaction
  -- holds (then, like any write, it can deadlock with a transaction that stores several entries in
  -- the other order: PostgreSQL aborts one, 40P01; the runner stores one per transaction). The price: while the
  -- caller's other transactions hold entries, this store may find fewer to evict, and the caller
  -- keeps up to one entry over the bound per such transaction, until its next store evicts the
  -- excess (a soft bound: max + the caller's concurrent transactions). One evictor at a time per
  -- user: the user's row, locked without waiting (FOR NO KEY UPDATE: foreign key checks' KEY SHARE
  -- still pass); a store that finds it held leaves the eviction to the next store. Two evictors at
  -- once each counted the same committed excess and each evicted it (8 clients, bound 5: 4 left).
  IF EXISTS (SELECT 1 FROM memoriesdb.users AS u WHERE u.id = uid FOR NO KEY UPDATE SKIP LOCKED) THEN
    SELECT count(*) INTO n FROM memoriesdb_internal.query_cache AS c WHERE c.owner_id = uid;
    IF n > max_entries THEN
      DELETE FROM memoriesdb_internal.query_cache AS c
       WHERE (c.owner_id, c.digest) IN (SELECT o.owner_id, o.digest FROM memoriesdb_internal.query_cache AS o
                                         WHERE o.owner_id = uid AND o.digest <> d
                                         ORDER BY o.used_at LIMIT n - max_entries FOR UPDATE SKIP LOCKED);
    END IF;
  END IF;
  RETURN true;
END
$$;
COMMENT ON FUNCTION memoriesdb.cache_query_vector(text, text, public.vector) IS
  'Stores v as the context user''s vector for this model and (normalised) query, replacing an older one; then evicts the user''s least recently used entries past query_cache_max_entries (one evictor per user at a time, skipping entries the user''s concurrent transactions hold: then the next store evicts the excess; never evicts below the bound). Stores only an HMAC of the query, never its text. true when stored; false when the cache is off (query_cache_max_entries 0) or the transaction is read-only. MDB26: bad model name or query, NULL vector, more than query_cache_max_dimensions dimensions, zero norm.';

CREATE OR REPLACE FUNCTION memoriesdb.clear_query_cache(model text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET memoriesdb.context_checked = ''
AS $$
DECLARE
  uid uuid := memoriesdb_internal.require_user();
  n bigint;
BEGIN
  DELETE FROM memoriesdb_internal.query_cache AS c
   WHERE c.owner_id = uid AND (clear_query_cache.model IS NULL OR c.model = clear_query_cache.model);
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;
COMMENT ON FUNCTION memoriesdb.clear_query_cache(text) IS
  'Drops the context user''s cached query vectors (of one model, or all when model is NULL); returns how many. Nobody else''s.';

COMMIT;
