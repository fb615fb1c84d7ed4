-- Verify memoriesdb:text_owner_index on pg
BEGIN;
SELECT 1/(to_regclass('memoriesdb.memories_owner_words') IS NOT NULL AND to_regclass('memoriesdb.memories_content_tsv') IS NULL)::int;
-- one key per word, the owner in each: the same word of two owners gives two keys
SELECT 1/(cardinality(memoriesdb_internal.owner_word_keys('00000000-0000-0000-0000-000000000001', 'tea coffee'::tsvector)) = 2
          AND NOT memoriesdb_internal.owner_word_keys('00000000-0000-0000-0000-000000000001', 'tea'::tsvector)
              && memoriesdb_internal.owner_word_keys('00000000-0000-0000-0000-000000000002', 'tea'::tsvector))::int;
ROLLBACK;
