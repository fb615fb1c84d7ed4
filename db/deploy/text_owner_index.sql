-- Deploy memoriesdb:text_owner_index to pg
-- requires: search_bounds
-- requires: internal_schema
-- Run once (v0.5, issue 16). The full-text index keyed by owner and word: one GIN key per
-- (owner, lexeme) pair of a memory, a 64-bit hash of the two, so a large caller's search
-- reads the posting lists of its own words only. The index it replaces,
-- memories_content_tsv (GIN on content_tsv), held one posting list per word over every
-- tenant: a large caller's search read all of a common word's list before its owner_id
-- bitmap kept its own rows (3.5 ms at 100,000 memories, 35 ms at 1,000,000, and a timing
-- channel on how often other tenants use a word). A hash collision (another owner's pair
-- hashing alike) only adds a row the query's owner_id and @@ conditions then drop. Used by
-- memoriesdb_internal.fulltext_ranking() (search_text_fn.sql); nothing else read the old index
-- (websearch_to_tsquery() makes no prefix queries).
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

-- IMMUTABLE (an index expression): only pg_catalog functions and types, named by schema, no operator
-- looked up by search_path
CREATE FUNCTION memoriesdb_internal.owner_word_keys(owner uuid, words tsvector) RETURNS bigint[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
  SELECT pg_catalog.array_agg(pg_catalog.hashtextextended(pg_catalog.textcat(pg_catalog.textcat(pg_catalog.uuid_out(owner)::pg_catalog.text, ' '), w), 0))
    FROM pg_catalog.unnest(pg_catalog.tsvector_to_array(words)) AS w
$$;
COMMENT ON FUNCTION memoriesdb_internal.owner_word_keys(uuid, tsvector) IS
  'Internal: the keys of index memories_owner_words: a 64-bit hash of (owner, lexeme) for each lexeme of a full-text vector (NULL for none). A query asks for owner_word_keys(caller, array_to_tsvector(its words)).';

CREATE INDEX memories_owner_words ON memoriesdb.memories
  USING gin (memoriesdb_internal.owner_word_keys(owner_id, content_tsv));
COMMENT ON INDEX memoriesdb.memories_owner_words IS
  'Full-text index keyed by owner and word (owner_word_keys()): a large caller''s search_text() reads its own words'' posting lists only.';
DROP INDEX memoriesdb.memories_content_tsv;

COMMIT;
