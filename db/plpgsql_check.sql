-- plpgsql_check over every PL/pgSQL routine of the ledger: run by
-- scripts/plpgsql_check.sh DBNAME (whose header says how a finding is explained).
-- Prints one line per finding, "function [on table] line N: level sqlstate: message
-- (detail)", and informational lines starting with "-- ".
-- The extension exists only inside this transaction, which is rolled back: the
-- database is left as it was.
BEGIN;
CREATE SCHEMA plpgsql_check_run;
CREATE EXTENSION plpgsql_check SCHEMA plpgsql_check_run;

-- what is checked: every PL/pgSQL routine in a memoriesdb* schema (none of an
-- extension's); a trigger function once per table it is on (NEW and OLD take that
-- table's row type, with its transition tables), an event trigger function as is
CREATE TEMP TABLE plpgsql_check_target ON COMMIT DROP AS
SELECT p.oid AS fn, p.prorettype = 'trigger'::regtype AS is_trigger, t.tgrelid AS relid,
       t.tgoldtable, t.tgnewtable, p.prosrc
  FROM pg_proc AS p
  JOIN pg_namespace AS n ON n.oid = p.pronamespace
  LEFT JOIN (SELECT DISTINCT tgfoid, tgrelid, tgoldtable, tgnewtable FROM pg_trigger) AS t ON t.tgfoid = p.oid
 WHERE n.nspname LIKE 'memoriesdb%'
   AND p.prolang = (SELECT l.oid FROM pg_language AS l WHERE l.lanname = 'plpgsql')
   AND NOT EXISTS (SELECT 1 FROM pg_depend AS d
                    WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e');

SELECT format('-- plpgsql_check %s: %s PL/pgSQL routines, %s checks (trigger functions once per table)',
              (SELECT extversion FROM pg_extension WHERE extname = 'plpgsql_check'),
              count(DISTINCT fn), count(*))
  FROM plpgsql_check_target;

-- suppressions in the code, each to be explained by the comment next to it
SELECT DISTINCT format('-- explained: %s line %s: %s', t.fn::regprocedure, l.n, btrim(l.line))
  FROM plpgsql_check_target AS t,
       regexp_split_to_table(t.prosrc, E'\n') WITH ORDINALITY AS l(line, n)
 WHERE l.line ~* '@plpgsql_check_options|PRAGMA:';

-- a trigger function on no table cannot be checked (plpgsql_check needs the table)
SELECT format('%s line 0: error: trigger function on no table, not checked', t.fn::regprocedure)
  FROM plpgsql_check_target AS t
 WHERE t.is_trigger AND t.relid IS NULL
 ORDER BY 1;

SELECT format('%s%s line %s: %s %s: %s%s', c.functionid::regprocedure,
              ' on ' || t.relid::regclass, coalesce(c.lineno, 0), c.level, c.sqlstate,
              c.message, ' (' || c.detail || ')')
  FROM plpgsql_check_target AS t,
       LATERAL plpgsql_check_run.plpgsql_check_function_tb(
         t.fn, coalesce(t.relid, 0), fatal_errors => false, all_warnings => true, security_warnings => true,
         oldtable => t.tgoldtable, newtable => t.tgnewtable) AS c
 WHERE NOT t.is_trigger OR t.relid IS NOT NULL
 ORDER BY c.functionid::regprocedure::text, t.relid::regclass::text, c.lineno;

ROLLBACK;
