-- Verify memoriesdb:memory_words on pg
BEGIN;
SELECT 1/(to_regclass('memoriesdb_internal.memory_words') IS NOT NULL
          AND to_regclass('memoriesdb.memories_long_owner_words') IS NOT NULL)::int;
-- a short memory's words with their frequency and the vector's length; none for a long one
SELECT 1/(SELECT count(*) = 2 AND min(w.tf) = 1 AND max(w.tf) = 2 AND min(w.dl) = 2
            FROM memoriesdb_internal.words_of('00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-000000000002',
                                              'tea:1 coffee:2,3'::tsvector, false) AS w)::int;
SELECT 1/(NOT EXISTS (SELECT FROM memoriesdb_internal.words_of('00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-000000000002',
                                                               'tea:1'::tsvector, true)))::int;
ROLLBACK;
