-- Schema snapshot: a normalised, deterministic text description of the deployed
-- ledger, one fact per line, sorted, so that every schema change shows up in
-- review as a diff of the committed db/schema.snapshot. Run as a superuser:
--   psql -AtX -v ON_ERROR_STOP=1 -d DB -f db/schema_snapshot.sql
-- (scripts/schema_snapshot.sh DB [--check | --update] wraps it). Reads only.
--
-- What: every schema the ledger owns, found generically (all but the system's,
-- public, sqitch's registry and the pgTAP helpers' tests); the extensions (but
-- pgtap, which only the tests load) with their versions; per schema, relation,
-- column, function, type: owner, grants, comment; columns, constraints, indexes,
-- triggers, rules, policies, row-level security, sequences, types; functions'
-- signature, result, language, volatility, strictness, parallel safety,
-- security, SET options and an md5 of the body (views: of the definition);
-- default privileges; this database's grants and settings to ledger roles; and
-- the cluster roles the ledger uses (memoriesdb_* roles that own, are granted or
-- are named by something in this database): attributes, memberships, settings.
-- Objects that belong to an extension appear only through their grants.
--
-- Normalised: no OIDs; names schema-qualified (search_path is pg_catalog only);
-- a NULL ACL is expanded to the owner's defaults and every ACL is one line per
-- aclitem; this database's logger role memoriesdb_log_<hash of the database
-- name> is written memoriesdb_log_<db>, and the database's name in role
-- comments <db>. Data is left out: rows, sequence values, statistics.
\set QUIET on
SET search_path = pg_catalog, pg_temp;   -- every name in the output schema-qualified
-- and every constant printed the same way whatever the caller's settings
SET datestyle = 'ISO, MDY'; SET intervalstyle = postgres; SET timezone = 'UTC'; SET extra_float_digits = 1;

WITH
ns AS (
  SELECT n.oid, n.nspname, n.nspowner, n.nspacl FROM pg_namespace AS n
   WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'public', 'pg_toast', 'sqitch', 'tests')
     AND n.nspname !~ '^pg_(temp|toast_temp)_'
),
member_of AS (   -- objects created by an extension: extension name per (catalog, oid)
  SELECT d.classid, d.objid, e.extname FROM pg_depend AS d JOIN pg_extension AS e ON e.oid = d.refobjid
   WHERE d.deptype = 'e' AND d.refclassid = 'pg_extension'::regclass
),
rel AS (
  SELECT c.oid, c.relkind, c.relowner, c.relacl, c.reloptions, c.relpersistence, c.relrowsecurity, c.relforcerowsecurity,
         CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table' WHEN 'v' THEN 'view'
                        WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table' END
           || ' ' || c.oid::regclass::text AS label
    FROM pg_class AS c JOIN ns ON ns.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
     AND NOT EXISTS (SELECT 1 FROM member_of AS m WHERE m.classid = 'pg_class'::regclass AND m.objid = c.oid)
),
col AS (
  SELECT r.label, r.relkind, a.*, row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum) AS position
    FROM rel AS r JOIN pg_attribute AS a ON a.attrelid = r.oid
   WHERE a.attnum > 0 AND NOT a.attisdropped AND r.relkind <> 'S'
),
fn AS (
  SELECT p.*, m.extname,
         coalesce('extension ' || m.extname || ' ', '')
           || CASE p.prokind WHEN 'f' THEN 'function' WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' ELSE 'window function' END
           || ' ' || quote_ident(ns.nspname) || '.' || quote_ident(p.proname)
           || '(' || pg_get_function_identity_arguments(p.oid) || ')' AS label
    FROM pg_proc AS p JOIN ns ON ns.oid = p.pronamespace
    LEFT JOIN member_of AS m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
),
typ AS (   -- types of their own: not a relation's row type, not an implicit array type
  SELECT t.*, 'type ' || t.oid::regtype::text AS label
    FROM pg_type AS t JOIN ns ON ns.oid = t.typnamespace
   WHERE (t.typtype <> 'c' OR (SELECT c.relkind FROM pg_class AS c WHERE c.oid = t.typrelid) = 'c')
     AND NOT EXISTS (SELECT 1 FROM pg_type AS e WHERE e.typarray = t.oid)
     AND t.typtype <> 'm'
     AND NOT EXISTS (SELECT 1 FROM member_of AS m WHERE m.classid = 'pg_type'::regclass AND m.objid = t.oid)
),
-- everything with an owner and an ACL: (label, owner, ACL or NULL for the defaults, acldefault's kind, comment, extension member)
obj AS (
  SELECT 'schema ' || quote_ident(nspname) AS label, nspowner AS owner, nspacl AS acl, 'n' AS acl_kind,
         obj_description(oid, 'pg_namespace') AS comment, false AS ext
    FROM ns
  UNION ALL
  SELECT label, relowner, relacl, CASE relkind WHEN 'S' THEN 's' ELSE 'r' END, obj_description(oid, 'pg_class'), false FROM rel
  UNION ALL
  SELECT label, proowner, proacl, 'f', obj_description(oid, 'pg_proc'), extname IS NOT NULL FROM fn
  UNION ALL
  SELECT label, typowner, typacl, 'T', obj_description(oid, 'pg_type'), false FROM typ
),
policy AS (
  SELECT pol.*, r.label FROM pg_policy AS pol JOIN rel AS r ON r.oid = pol.polrelid
),
-- the cluster roles the ledger uses: memoriesdb_* roles this database names
ledger_role AS (
  SELECT a.* FROM pg_authid AS a
   WHERE a.rolname LIKE 'memoriesdb\_%' AND a.oid IN (
           SELECT owner FROM obj
           UNION SELECT (aclexplode(acl)).grantee FROM obj WHERE acl IS NOT NULL
           UNION SELECT (aclexplode(attacl)).grantee FROM col WHERE attacl IS NOT NULL
           UNION SELECT unnest(polroles) FROM policy
           UNION SELECT defaclrole FROM pg_default_acl
           UNION SELECT (aclexplode(defaclacl)).grantee FROM pg_default_acl
           UNION SELECT setrole FROM pg_db_role_setting
                  WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
           UNION SELECT (aclexplode(datacl)).grantee FROM pg_database WHERE datname = current_database())
),
fact(line) AS (
  -- extensions
  SELECT format('extension %s: version %s, schema %s', e.extname, e.extversion, e.extnamespace::regnamespace)
    FROM pg_extension AS e WHERE e.extname <> 'pgtap'
  -- owners, grants, comments (objects of an extension: grants only)
  UNION ALL SELECT label || ' owner: ' || owner::regrole::text FROM obj WHERE NOT ext
  UNION ALL SELECT label || ' grant: ' || regexp_replace(item::text, '^=', 'PUBLIC=')
              FROM obj, unnest(coalesce(acl, acldefault(acl_kind::"char", owner))) AS item
  UNION ALL SELECT label || ' comment: ' || comment FROM obj WHERE comment IS NOT NULL AND NOT ext
  -- default privileges
  UNION ALL SELECT format('default privileges of %s %s on %s: %s', d.defaclrole::regrole,
                          CASE WHEN d.defaclnamespace = 0 THEN 'in every schema' ELSE 'in schema ' || d.defaclnamespace::regnamespace END,
                          CASE d.defaclobjtype WHEN 'r' THEN 'tables' WHEN 'S' THEN 'sequences' WHEN 'f' THEN 'functions'
                                               WHEN 'T' THEN 'types' WHEN 'n' THEN 'schemas' END,
                          regexp_replace(item::text, '^=', 'PUBLIC='))
              FROM pg_default_acl AS d, unnest(d.defaclacl) AS item
             WHERE d.defaclrole IN (SELECT oid FROM ledger_role) OR d.defaclnamespace IN (SELECT oid FROM ns)
  -- relations
  UNION ALL SELECT label || ' row level security: ' || CASE WHEN relrowsecurity THEN 'enabled' ELSE 'disabled' END
                   || CASE WHEN relforcerowsecurity THEN ', forced' ELSE '' END
              FROM rel WHERE relkind IN ('r', 'p')
  UNION ALL SELECT label || ' persistence: ' || CASE relpersistence WHEN 'u' THEN 'unlogged' ELSE 'temporary' END
              FROM rel WHERE relpersistence <> 'p'
  UNION ALL SELECT label || ' options: ' || array_to_string(reloptions, ', ') FROM rel WHERE reloptions IS NOT NULL
  UNION ALL SELECT label || ' definition md5: ' || md5(pg_get_viewdef(oid)) FROM rel WHERE relkind IN ('v', 'm')
  UNION ALL SELECT r.label || format(': %s START %s INCREMENT %s MINVALUE %s MAXVALUE %s CACHE %s%s',
                                     s.seqtypid::regtype, s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache,
                                     CASE WHEN s.seqcycle THEN ' CYCLE' ELSE '' END)
              FROM rel AS r JOIN pg_sequence AS s ON s.seqrelid = r.oid
  UNION ALL SELECT r.label || ' owned by: ' || d.refobjid::regclass || '.' || quote_ident(a.attname)
              FROM rel AS r JOIN pg_depend AS d ON d.classid = 'pg_class'::regclass AND d.objid = r.oid
                             AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
              JOIN pg_attribute AS a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
             WHERE r.relkind = 'S'
  -- columns
  UNION ALL SELECT format('%s column %s %s: %s', c.label, lpad(c.position::text, 2, '0'), quote_ident(c.attname),
                          format_type(c.atttypid, c.atttypmod))
                   || CASE WHEN c.attnotnull THEN ' not null' ELSE '' END
                   || CASE WHEN c.attcollation <> (SELECT t.typcollation FROM pg_type AS t WHERE t.oid = c.atttypid)
                           THEN ' collate ' || (SELECT quote_ident(l.collname) FROM pg_collation AS l WHERE l.oid = c.attcollation) ELSE '' END
                   || CASE c.attidentity WHEN 'a' THEN ' generated always as identity' WHEN 'd' THEN ' generated by default as identity' ELSE '' END
                   || coalesce(CASE WHEN c.attgenerated = 's' THEN ' generated always as (' || pg_get_expr(d.adbin, d.adrelid) || ') stored'
                                    ELSE ' default ' || pg_get_expr(d.adbin, d.adrelid) END, '')
              FROM col AS c LEFT JOIN pg_attrdef AS d ON d.adrelid = c.attrelid AND d.adnum = c.attnum
  UNION ALL SELECT format('%s column %s grant: %s', label, quote_ident(attname), regexp_replace(item::text, '^=', 'PUBLIC='))
              FROM col, unnest(attacl) AS item
  UNION ALL SELECT format('%s column %s comment: %s', label, quote_ident(attname), col_description(attrelid, attnum))
              FROM col WHERE col_description(attrelid, attnum) IS NOT NULL
  -- constraints (of relations and of domains)
  UNION ALL SELECT format('%s constraint %s: %s', coalesce(r.label, t.label), quote_ident(k.conname), pg_get_constraintdef(k.oid))
                   || coalesce(' -- ' || obj_description(k.oid, 'pg_constraint'), '')
              FROM pg_constraint AS k LEFT JOIN rel AS r ON r.oid = k.conrelid LEFT JOIN typ AS t ON t.oid = k.contypid
             WHERE r.oid IS NOT NULL OR t.oid IS NOT NULL
  -- indexes
  -- (a model's HNSW index on embeddings, models_api.sql, is named and filtered by the model's random id)
  UNION ALL SELECT regexp_replace(regexp_replace(
                     format('%s index %s: %s', r.label, quote_ident(c.relname), pg_get_indexdef(i.indexrelid)),
                     'embeddings_model_[0-9a-f]{32}', 'embeddings_model_<model id>', 'g'),
                     'model_id = ''[0-9a-f-]{36}''::uuid', 'model_id = ''<model id>''::uuid', 'g')
                   || CASE WHEN NOT i.indisvalid THEN ' (INVALID)' ELSE '' END
                   || coalesce(' -- ' || obj_description(c.oid, 'pg_class'), '')
              FROM rel AS r JOIN pg_index AS i ON i.indrelid = r.oid JOIN pg_class AS c ON c.oid = i.indexrelid
  -- triggers, rules, policies
  UNION ALL SELECT format('%s trigger %s: %s', r.label, quote_ident(g.tgname), pg_get_triggerdef(g.oid))
                   || CASE g.tgenabled WHEN 'O' THEN '' WHEN 'D' THEN ' (DISABLED)' WHEN 'R' THEN ' (ENABLE REPLICA)' ELSE ' (ENABLE ALWAYS)' END
                   || coalesce(' -- ' || obj_description(g.oid, 'pg_trigger'), '')
              FROM rel AS r JOIN pg_trigger AS g ON g.tgrelid = r.oid WHERE NOT g.tgisinternal
  UNION ALL SELECT format('%s rule %s: %s', r.label, quote_ident(w.rulename), pg_get_ruledef(w.oid))
              FROM rel AS r JOIN pg_rewrite AS w ON w.ev_class = r.oid WHERE w.rulename <> '_RETURN'
  UNION ALL SELECT format('%s policy %s: %s FOR %s TO %s', label, quote_ident(polname),
                          CASE WHEN polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END,
                          CASE polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
                          (SELECT string_agg(CASE WHEN ro = 0 THEN 'PUBLIC' ELSE ro::regrole::text END, ', ' ORDER BY 1)
                             FROM unnest(polroles) AS ro))
                   || coalesce(' USING (' || pg_get_expr(polqual, polrelid) || ')', '')
                   || coalesce(' WITH CHECK (' || pg_get_expr(polwithcheck, polrelid) || ')', '')
              FROM policy
  -- functions (objects of an extension: grants only, above)
  UNION ALL SELECT label || ' arguments: ' || pg_get_function_arguments(oid) FROM fn WHERE extname IS NULL
  UNION ALL SELECT label || ' returns: ' || coalesce(pg_get_function_result(oid), '-') FROM fn WHERE extname IS NULL
  UNION ALL SELECT label || ' language: ' || (SELECT l.lanname FROM pg_language AS l WHERE l.oid = prolang) FROM fn WHERE extname IS NULL
  UNION ALL SELECT label || ' volatility: ' || CASE provolatile WHEN 'i' THEN 'immutable' WHEN 's' THEN 'stable' ELSE 'volatile' END
              FROM fn WHERE extname IS NULL
  UNION ALL SELECT label || ' strict: ' || CASE WHEN proisstrict THEN 'yes' ELSE 'no' END FROM fn WHERE extname IS NULL
  UNION ALL SELECT label || ' parallel: ' || CASE proparallel WHEN 's' THEN 'safe' WHEN 'r' THEN 'restricted' ELSE 'unsafe' END
              FROM fn WHERE extname IS NULL
  UNION ALL SELECT label || ' security: ' || CASE WHEN prosecdef THEN 'definer' ELSE 'invoker' END FROM fn WHERE extname IS NULL
  UNION ALL SELECT label || ' leakproof: yes' FROM fn WHERE extname IS NULL AND proleakproof
  UNION ALL SELECT label || format(' cost: %s', procost) || CASE WHEN proretset THEN format(', rows %s', prorows) ELSE '' END
              FROM fn WHERE extname IS NULL
  UNION ALL SELECT label || ' set: ' || setting FROM fn, unnest(proconfig) AS setting WHERE extname IS NULL
  UNION ALL SELECT label || ' body md5: ' || md5(prosrc) FROM fn WHERE extname IS NULL
  -- types
  UNION ALL SELECT label || ' enum: ' || (SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder)
                                            FROM pg_enum AS e WHERE e.enumtypid = typ.oid)
              FROM typ WHERE typtype = 'e'
  UNION ALL SELECT label || ' domain: ' || format_type(typbasetype, typtypmod)
                   || CASE WHEN typnotnull THEN ' not null' ELSE '' END || coalesce(' default ' || typdefault, '')
              FROM typ WHERE typtype = 'd'
  UNION ALL SELECT label || ' range: ' || (SELECT g.rngsubtype::regtype::text FROM pg_range AS g WHERE g.rngtypid = typ.oid)
              FROM typ WHERE typtype = 'r'
  UNION ALL SELECT format('%s attribute %s %s: %s', t.label, lpad(a.attnum::text, 2, '0'), quote_ident(a.attname),
                          format_type(a.atttypid, a.atttypmod))
              FROM typ AS t JOIN pg_attribute AS a ON a.attrelid = t.typrelid
             WHERE t.typtype = 'c' AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL SELECT label || ' type: ' || CASE typtype WHEN 'b' THEN 'base' WHEN 'p' THEN 'pseudo' END
              FROM typ WHERE typtype IN ('b', 'p')
  -- event triggers that run a ledger function
  UNION ALL SELECT format('event trigger %s: ON %s%s EXECUTE FUNCTION %s, owner %s, enabled %s', quote_ident(v.evtname), v.evtevent,
                          coalesce(' WHEN TAG IN (' || array_to_string(v.evttags, ', ') || ')', ''),
                          v.evtfoid::regproc, v.evtowner::regrole, v.evtenabled)
              FROM pg_event_trigger AS v WHERE v.evtfoid IN (SELECT oid FROM fn)
  -- this database: its grants to ledger roles and its settings
  -- (granted by the database's owner, whoever created it: not part of the ledger)
  UNION ALL SELECT 'database grant: ' || regexp_replace(item::text, '/[^/]*$', '/<database owner>')
              FROM pg_database AS d, unnest(d.datacl) AS item
             WHERE d.datname = current_database()
               AND EXISTS (SELECT 1 FROM aclexplode(ARRAY[item]) AS x WHERE x.grantee IN (SELECT oid FROM ledger_role))
  UNION ALL SELECT 'database setting: ' || setting
              FROM pg_db_role_setting AS s, unnest(s.setconfig) AS setting
             WHERE s.setrole = 0 AND s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
  -- the cluster roles the ledger uses
  UNION ALL SELECT format('role %s: %s %s %s %s %s %s %s, CONNECTION LIMIT %s, PASSWORD %s, VALID UNTIL %s', rolname,
                          CASE WHEN rolcanlogin THEN 'LOGIN' ELSE 'NOLOGIN' END,
                          CASE WHEN rolsuper THEN 'SUPERUSER' ELSE 'NOSUPERUSER' END,
                          CASE WHEN rolinherit THEN 'INHERIT' ELSE 'NOINHERIT' END,
                          CASE WHEN rolcreaterole THEN 'CREATEROLE' ELSE 'NOCREATEROLE' END,
                          CASE WHEN rolcreatedb THEN 'CREATEDB' ELSE 'NOCREATEDB' END,
                          CASE WHEN rolreplication THEN 'REPLICATION' ELSE 'NOREPLICATION' END,
                          CASE WHEN rolbypassrls THEN 'BYPASSRLS' ELSE 'NOBYPASSRLS' END,
                          rolconnlimit, CASE WHEN rolpassword IS NULL THEN 'none' ELSE 'set' END,
                          coalesce(rolvaliduntil::text, 'none'))
              FROM ledger_role
  UNION ALL SELECT format('role %s member of: %s%s', r.rolname, m.roleid::regrole, CASE WHEN m.admin_option THEN ' WITH ADMIN OPTION' ELSE '' END)
              FROM ledger_role AS r JOIN pg_auth_members AS m ON m.member = r.oid
  UNION ALL SELECT format('role %s setting in %s: %s', r.rolname,
                          CASE WHEN s.setdatabase = 0 THEN 'every database' ELSE 'this database' END, setting)
              FROM ledger_role AS r JOIN pg_db_role_setting AS s ON s.setrole = r.oid
                   AND s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database())),
                   unnest(s.setconfig) AS setting
  UNION ALL SELECT format('role %s comment: %s', rolname,   -- the database's name as a word of its own
                          regexp_replace(shobj_description(oid, 'pg_authid'),
                                         '(^|[^[:alnum:]_.])' || regexp_replace(current_database(), '([^[:alnum:]_])', '\\\1', 'g') || '($|[^[:alnum:]_.])',
                                         '\1<db>\2', 'g'))
              FROM ledger_role WHERE shobj_description(oid, 'pg_authid') IS NOT NULL
)
SELECT line FROM (
  SELECT replace(replace(line, E'\n', '\n'), 'memoriesdb_log_' || left(md5(current_database()), 12), 'memoriesdb_log_<db>') AS line
    FROM fact) AS normalised
 ORDER BY line COLLATE "C";
