-- Deploy memoriesdb:memory_words to pg
-- requires: text_owner_index
-- requires: search_bounds
-- The words of each memory's window, one row per (owner, word, memory), for search_text()'s BM25 (run once; v0.5,
-- issue 16). Measured before it (bench/search.py, 100,000 memories, the 30% tenant's two-word query: 8,759 matches),
-- fulltext_ranking() took 52 ms to score the matches it found by the GIN index: 15 ms reading 5,710 heap pages of
-- memories (a row is ~1.7 kB with its vector mirror), 11 ms taking each match's query words out of its full-text
-- vector (setweight, ts_filter, unnest), 20 ms counting and summing, 6 ms sorting; search_text p95 54 ms through
-- PgBouncer against a goal of 30, search_hybrid 64.7 against 50. Here a word's frequency in the window (tf) and the
-- window's length (dl, its distinct words, as length(tsvector) counts) are stored beside the word, and the primary
-- key (owner_id, word, memory_id) INCLUDE (tf, dl) hands a caller's postings of the query's words to an index-only
-- scan: no heap page of memories, no full-text vector taken apart at query time.
--
-- Which memories: those whose window is all of their content (content_trgm IS NULL: at most
-- search_text_window_chars characters; nearly every memory). A longer memory can match past its window, where a
-- window's words cannot say whether it matches: those are found by memories_long_owner_words, the GIN index keyed
-- by owner and word over long memories only, as all were before. So a memory has rows here only while it is short,
-- and at most one row per distinct word of at most search_text_window_chars characters (no tenant grows this table
-- faster than its memories' text).
--
-- Kept by the trigger memory_words on memories (keep_memory_words()): on INSERT, on DELETE, and on an UPDATE that
-- changes content, the window or the owner (revise(), transfer()). A change made with triggers off (a superuser's
-- re-window of the stored memories, a bulk load) must be followed by memoriesdb_internal.rebuild_memory_words(),
-- which mends only the rows that differ, under row locks (writes go on); until then the trigger still never
-- fails on such a memory (it deletes by the memory's words whatever its window, and an insert over a stale row
-- replaces it). Internal: no role but the owner reads it; only fulltext_ranking() (SECURITY DEFINER) does, for
-- the context user's own rows, at most search_text_max_postings of them a search.
BEGIN;
SET LOCAL ROLE memoriesdb_owner;

CREATE TABLE memoriesdb_internal.memory_words (
  owner_id uuid NOT NULL,
  word text NOT NULL,
  memory_id uuid NOT NULL,
  tf integer NOT NULL CHECK (tf >= 1),
  dl integer NOT NULL CHECK (dl >= 1),
  PRIMARY KEY (owner_id, word, memory_id) INCLUDE (tf, dl)
);
COMMENT ON TABLE memoriesdb_internal.memory_words IS
  'Internal: the words (english lexemes) of every memory whose window is all of its content (content_trgm IS NULL), one row per owner, word and memory, with the word''s frequency in it (tf) and its number of distinct words (dl): search_text()''s BM25 reads a caller''s postings of the query''s words by an index-only scan of the primary key. Kept by the trigger memory_words on memories (keep_memory_words()).';
COMMENT ON COLUMN memoriesdb_internal.memory_words.owner_id IS 'The memory''s owner (it follows a transfer).';
COMMENT ON COLUMN memoriesdb_internal.memory_words.word IS 'A lexeme of the memory''s full-text vector, content_tsv.';
COMMENT ON COLUMN memoriesdb_internal.memory_words.memory_id IS 'The memory (memories.id); no foreign key: the trigger memory_words deletes the rows with the memory, by this primary key.';
COMMENT ON COLUMN memoriesdb_internal.memory_words.tf IS 'How often the word occurs in the memory: its positions in content_tsv (at least 1).';
COMMENT ON COLUMN memoriesdb_internal.memory_words.dl IS 'The memory''s length as BM25 reads it: length(content_tsv), its distinct words.';
ALTER TABLE memoriesdb_internal.memory_words ENABLE ROW LEVEL SECURITY;   -- no policy: no role but its owner reads it

-- The rows of one memory: its words, if its window is all of it
CREATE FUNCTION memoriesdb_internal.words_of(owner uuid, memory uuid, tsv tsvector, long boolean)
RETURNS TABLE (owner_id uuid, word text, memory_id uuid, tf integer, dl integer)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT owner, w.lexeme, memory, greatest(cardinality(w.positions), 1), length(tsv)
    FROM unnest(tsv) AS w
   WHERE NOT long
$$;
COMMENT ON FUNCTION memoriesdb_internal.words_of(uuid, uuid, tsvector, boolean) IS
  'Internal: the rows of memory_words for one memory: each lexeme of its full-text vector tsv with its positions counted (tf, at least 1) and the vector''s length (dl); none when the memory is long (content_trgm IS NOT NULL: its window is not all of it).';

CREATE FUNCTION memoriesdb_internal.keep_memory_words() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.owner_id = OLD.owner_id AND NEW.content_tsv = OLD.content_tsv
     AND (NEW.content_trgm IS NULL) = (OLD.content_trgm IS NULL) THEN
    RETURN NULL;   -- its words, owner and length stay
  END IF;
  -- by the old words whatever the old window: a memory made long with triggers off (a re-window) still had rows
  IF TG_OP <> 'INSERT' THEN
    DELETE FROM memoriesdb_internal.memory_words AS w
     WHERE w.owner_id = OLD.owner_id AND w.word = ANY (tsvector_to_array(OLD.content_tsv)) AND w.memory_id = OLD.id;
  END IF;
  IF TG_OP <> 'DELETE' THEN
    INSERT INTO memoriesdb_internal.memory_words AS w (owner_id, word, memory_id, tf, dl)
    SELECT * FROM memoriesdb_internal.words_of(NEW.owner_id, NEW.id, NEW.content_tsv, NEW.content_trgm IS NOT NULL)
    ON CONFLICT (owner_id, word, memory_id) DO UPDATE SET tf = excluded.tf, dl = excluded.dl;   -- (a stale row)
  END IF;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.keep_memory_words() IS
  'Internal: trigger memory_words on memories (AFTER INSERT, DELETE, UPDATE OF content, content_trgm, content_tsv, owner_id): a memory''s rows of memory_words follow its words, its window and its owner (words_of()).';
CREATE TRIGGER memory_words AFTER INSERT OR DELETE OR UPDATE OF content, content_trgm, content_tsv, owner_id ON memoriesdb.memories
  FOR EACH ROW EXECUTE FUNCTION memoriesdb_internal.keep_memory_words();

-- After a change made with triggers off (a superuser's re-window, a bulk load): the rows of memory_words that differ
-- from what the memories say, mended. No table lock (a TRUNCATE held every tenant's writes and large searches for the
-- whole rebuild): row locks only, against one snapshot, so a memory written meanwhile is left as its trigger wrote it.
CREATE FUNCTION memoriesdb_internal.rebuild_memory_words() RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  gone bigint;
  added bigint;
BEGIN
  DELETE FROM memoriesdb_internal.memory_words AS w
   WHERE NOT EXISTS (SELECT FROM memoriesdb.memories AS m,
                                 memoriesdb_internal.words_of(m.owner_id, m.id, m.content_tsv, m.content_trgm IS NOT NULL) AS x
                      WHERE m.owner_id = w.owner_id AND m.id = w.memory_id AND x.word = w.word AND x.tf = w.tf AND x.dl = w.dl);
  GET DIAGNOSTICS gone = ROW_COUNT;
  INSERT INTO memoriesdb_internal.memory_words AS w (owner_id, word, memory_id, tf, dl)
  SELECT m.owner_id, x.word, m.id, x.tf, x.dl FROM memoriesdb.memories AS m,   -- (the owner as the memories' column: colocated on Citus)
         memoriesdb_internal.words_of(m.owner_id, m.id, m.content_tsv, m.content_trgm IS NOT NULL) AS x
   WHERE NOT EXISTS (SELECT FROM memoriesdb_internal.memory_words AS y
                      WHERE y.owner_id = m.owner_id AND y.word = x.word AND y.memory_id = m.id AND y.tf = x.tf AND y.dl = x.dl)
  ON CONFLICT (owner_id, word, memory_id) DO UPDATE SET tf = excluded.tf, dl = excluded.dl;
  GET DIAGNOSTICS added = ROW_COUNT;
  RETURN gone + added;
END
$$;
COMMENT ON FUNCTION memoriesdb_internal.rebuild_memory_words() IS
  'Internal (superuser, or the owner): after a change made with triggers off (a re-window of the stored memories, a bulk load), the rows of memory_words that differ from what the memories say deleted and the missing ones written, under row locks only; returns the rows deleted plus written.';
REVOKE ALL ON FUNCTION memoriesdb_internal.rebuild_memory_words() FROM PUBLIC;

SELECT memoriesdb_internal.rebuild_memory_words();   -- the memories stored until now

-- The most postings one search scores from memory_words: past it (a common word of a very large tenant) the matches
-- are read from the memories instead, at most 50,000 of them, as every other plan reads them
INSERT INTO memoriesdb.config (key, value, description) VALUES
  ('search_text_max_postings', '200000', 'search_text(), search_hybrid(): the most (memory, word) postings of the query''s words one search scores from memoriesdb_internal.memory_words for a large caller (about 0.5 us each: 200,000 is ~100 ms); past it the matches are read from the memories instead, at most 50,000, as the other plans read them');
UPDATE memoriesdb.config
   SET description = description || ', then run SELECT memoriesdb_internal.rebuild_memory_words() (triggers off: the words search_text() scores follow the window)'
 WHERE key = 'search_text_window_chars' AND description NOT LIKE '%rebuild_memory_words%';

-- A long memory (content_trgm IS NOT NULL) can match past its window: found by the words of its whole content,
-- within its owner's rows (fulltext_ranking())
CREATE INDEX memories_long_owner_words ON memoriesdb.memories
  USING gin (memoriesdb_internal.owner_word_keys(owner_id, content_tsv)) WHERE content_trgm IS NOT NULL;
COMMENT ON INDEX memoriesdb.memories_long_owner_words IS
  'Full-text index keyed by owner and word (owner_word_keys()) of the long memories only (content_trgm IS NOT NULL: longer than the window): search_text() finds a large caller''s short memories in memory_words and its long ones here.';

COMMIT;
