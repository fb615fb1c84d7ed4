"""Where does remember()'s time go beyond a plain INSERT (issue 14, part 1)? On a scratch database (the deploying
superuser switches one component off at a time, measures, switches it back), one client runs whole transactions
(BEGIN, context, remember(), COMMIT) for a memoriesdb_backend login (vouched) and a memoriesdb_app login (proven:
authenticate(api_key) first), and the server process's CPU time (/proc/<pid>/schedstat) per transaction is measured:
it moves less than the wall clock with whatever else runs on the machine, and each variant is measured A B B A
(everything, switched off, switched off, everything) so a drift of the load cancels. A component's cost is the CPU time with
everything minus the CPU time without it. The variants rotate over --rounds rounds; each delta is the median of the
rounds' deltas. A plain INSERT of the same row is measured the same way, for reference. Then one run with
track_functions = all gives each PL/pgSQL/SQL function's self time per remember(). Needs the server on this machine.

Usage: python bench/remember_profile.py [--transactions 1500] [--rounds 3] [--db mdb_bench_profile] [--keep] [--out FILE]
       [--smoke (10 transactions, 1 round; results to a temporary file unless --out)]
Writes bench/results/remember_profile.md (and prints it). Never on a database you care about: it rewrites functions
and drops indexes while it measures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from audit_chain import drop_db, fresh_ledger

ROOT = Path(__file__).resolve().parents[1]
OWNERS = 8


def fn_off(sig: str, body: str, lang: str = "plpgsql") -> str:
    """Replace a function's body in place (same signature, owner, grants)."""
    return f"CREATE OR REPLACE FUNCTION {sig} AS $x$ {body} $x$ LANGUAGE {lang}"


def ri(table: str, constraint: str) -> tuple[str, str]:
    """Disable/enable the referencing-side RI trigger of one foreign key (superuser only)."""
    q = (
        "SELECT string_agg(format('ALTER TABLE %s {0} TRIGGER %I', t.tgrelid::regclass, t.tgname), '; ') "
        "FROM pg_trigger t JOIN pg_constraint c ON c.oid = t.tgconstraint "
        f"WHERE c.conname = '{constraint}' AND t.tgrelid = '{table}'::regclass"
    )
    return q.format("DISABLE"), q.format("ENABLE")


# name: (what it is, apply SQL, revert SQL or None: the functions named in `restore` are put back as they were)
VARIANTS: dict[str, tuple[str, list[str], list[str], list[str]]] = {
    "seal": (
        "deferred seal trigger on audit_log (at COMMIT: lock, head, digest, seal insert)",
        ["ALTER TABLE memoriesdb.audit_log DISABLE TRIGGER seal"],
        ["ALTER TABLE memoriesdb.audit_log ENABLE TRIGGER seal"],
        [],
    ),
    "audit": (
        "audit triggers on memories and memory_revisions (2 audit rows, their hashes, and so the seal)",
        [
            "ALTER TABLE memoriesdb.memories DISABLE TRIGGER audit",
            "ALTER TABLE memoriesdb.memory_revisions DISABLE TRIGGER audit",
        ],
        [
            "ALTER TABLE memoriesdb.memories ENABLE TRIGGER audit",
            "ALTER TABLE memoriesdb.memory_revisions ENABLE TRIGGER audit",
        ],
        [],
    ),
    "hash_row": (
        "audit_hash_row (canonical form + SHA-256 of each audit row)",
        [fn_off("memoriesdb_internal.audit_hash_row() RETURNS trigger", "BEGIN NEW.row_hash := '\\x00'; RETURN NEW; END")],
        [],
        ["memoriesdb_internal.audit_hash_row()"],
    ),
    "text_index": (
        "text_index trigger (content_tsv, content_trgm)",
        ["ALTER TABLE memoriesdb.memories DISABLE TRIGGER text_index"],
        ["ALTER TABLE memoriesdb.memories ENABLE TRIGGER text_index"],
        [],
    ),
    "text_indexes": (
        "the trigram and full-text indexes of memories (maintenance of the two index entries)",
        ["DROP INDEX memoriesdb.memories_content_trgm", "DROP INDEX memoriesdb.memories_owner_words"],
        [
            "CREATE INDEX memories_content_trgm ON memoriesdb.memories USING gist "
            "(coalesce(content_trgm, content) gist_trgm_ops)",
            "CREATE INDEX memories_owner_words ON memoriesdb.memories USING gin "
            "(memoriesdb_internal.owner_word_keys(owner_id, content_tsv))",
        ],
        [],
    ),
    "enqueue": (
        "enqueue_embedding trigger (embedding_schedule upsert, its stamp, FK check, NOTIFY)",
        ["ALTER TABLE memoriesdb.memories DISABLE TRIGGER enqueue_embedding"],
        ["ALTER TABLE memoriesdb.memories ENABLE TRIGGER enqueue_embedding"],
        [],
    ),
    "stamp_ctx": (
        "stamp_row's context check (current_user_id() in 3 stamps), replaced by reading app.current_user",
        [
            fn_off(
                "memoriesdb_internal.stamp_row() RETURNS trigger",
                "BEGIN IF TG_OP = 'INSERT' THEN NEW.created_at := now(); "
                "NEW.created_by := current_setting('app.current_user')::uuid; END IF; NEW.updated_at := now(); "
                "NEW.updated_by := current_setting('app.current_user')::uuid; RETURN NEW; END",
            )
        ],
        [],
        ["memoriesdb_internal.stamp_row()"],
    ),
    "checks": (
        "check_content, check_metadata, check_json_size (3 settings() lookups)",
        [
            fn_off("memoriesdb_internal.check_content(content text) RETURNS void", "BEGIN END"),
            fn_off("memoriesdb_internal.check_metadata(metadata jsonb) RETURNS void", "BEGIN END"),
            fn_off(
                "memoriesdb_internal.check_json_size(value jsonb, limit_key text, message text, hint text) RETURNS void",
                "BEGIN END",
            ),
        ],
        [],
        [
            "memoriesdb_internal.check_content(text)",
            "memoriesdb_internal.check_metadata(jsonb)",
            "memoriesdb_internal.check_json_size(jsonb, text, text, text)",
        ],
    ),
    "require_user": (
        "require_user() (context + the user's existence)",
        [
            fn_off(
                "memoriesdb_internal.require_user() RETURNS uuid",
                "BEGIN RETURN current_setting('app.current_user')::uuid; END",
            )
        ],
        [],
        ["memoriesdb_internal.require_user()"],
    ),
    "fk": (
        "foreign key checks (memories.owner_id, memory_revisions.memory_id, embedding_schedule.memory_id)",
        [],
        [],
        [],
    ),
    "revision": (
        "the memory_revisions row (insert, indexes, its stamp and audit row)",
        [],
        [],
        ["memoriesdb.remember(text, jsonb)"],
    ),
    "rls": (
        "row level security on memories, memory_revisions, audit_log, embedding_schedule (policies: true)",
        [
            f"ALTER TABLE memoriesdb.{t} NO FORCE ROW LEVEL SECURITY"
            for t in ("memories", "memory_revisions", "audit_log", "embedding_schedule")
        ],
        [
            f"ALTER TABLE memoriesdb.{t} FORCE ROW LEVEL SECURITY"
            for t in ("memories", "memory_revisions", "audit_log", "embedding_schedule")
        ],
        [],
    ),
}

# Proposed changes (not deployed): the "switched off" state is the proposal; the delta is what it saves.
R1 = open(Path(__file__).with_name("remember_profile_r1.sql")).read()
VARIANTS["proposal: audit SQL helpers as PL/pgSQL"] = (
    "audit_canonical, audit_strip, audit_seal_hash (audit_log.sql) as PL/pgSQL: their plans kept for the session "
    "(bench/remember_profile_r1.sql)",
    [R1],
    [],
    [
        "memoriesdb_internal.audit_canonical(memoriesdb.audit_log)",
        "memoriesdb_internal.audit_strip(jsonb)",
        "memoriesdb_internal.audit_seal_hash(memoriesdb.audit_seals)",
    ],
)
VARIANTS["proposal: text index fast path"] = (
    "set_text_index_columns(): to_tsvector inline for content up to 64 kB (what content_tsvector() does then)",
    [
        """CREATE OR REPLACE FUNCTION memoriesdb_internal.set_text_index_columns() RETURNS trigger LANGUAGE plpgsql
        SET search_path = pg_catalog, pg_temp AS $x$
        BEGIN
          IF TG_OP = 'INSERT' OR NEW.content IS DISTINCT FROM OLD.content THEN
            NEW.content_tsv := CASE WHEN octet_length(NEW.content) <= 65536 THEN to_tsvector('english'::regconfig, NEW.content)
                                    ELSE memoriesdb_internal.content_tsvector(NEW.content) END;
            NEW.content_trgm := memoriesdb_internal.trgm_prefix(NEW.content);
          ELSE
            NEW.content_tsv := OLD.content_tsv;
            NEW.content_trgm := OLD.content_trgm;
          END IF;
          RETURN NEW;
        END $x$"""
    ],
    [],
    ["memoriesdb_internal.set_text_index_columns()"],
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--transactions", type=int, default=1500)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--db", default="mdb_bench_profile")
    ap.add_argument("--host", default=os.environ.get("PGHOST", "127.0.0.1"))
    ap.add_argument("--out", default="")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated variants (default: all)")
    ap.add_argument("--smoke", action="store_true", help="tiny N: checks that the benchmark still runs")
    args = ap.parse_args()
    if args.smoke:
        args.transactions, args.rounds = 10, 1
    args.out = args.out or (tempfile.mkstemp(suffix=".md")[1] if args.smoke else str(ROOT / "bench/results/remember_profile.md"))
    db = args.db
    logins = fresh_ledger(args.host, db)
    admin = f"postgresql://postgres@{args.host}/postgres"
    dsn = f"postgresql://postgres@{args.host}/{db}"
    c = psycopg.connect(dsn, autocommit=True)
    c.execute(f"""
      CREATE SCHEMA bench;
      CREATE TABLE bench.owners (n integer PRIMARY KEY, id uuid NOT NULL, api_key text NOT NULL);
      INSERT INTO bench.owners SELECT g, u.id, memoriesdb.create_api_key(u.id, 'infinity')
        FROM generate_series(1, {OWNERS}) AS g, LATERAL (SELECT memoriesdb.create_user('bench' || g) AS id) AS u;
      GRANT USAGE ON SCHEMA bench TO {logins["app"][0]}, {logins["be"][0]};
      GRANT SELECT ON bench.owners TO {logins["app"][0]}, {logins["be"][0]};""")
    for login, _ in logins.values():  # the bounds every ledger login gets
        c.execute("SELECT memoriesdb.configure_login(%s)", (login,))

    # variants whose SQL depends on the deployed catalog
    fk = [
        ri("memoriesdb.memories", "memories_owner_id_fkey"),
        ri("memoriesdb.memory_revisions", "memory_revisions_memory_id_fkey"),
        ri("memoriesdb.embedding_schedule", "embedding_schedule_memory_id_fkey"),
    ]
    VARIANTS["fk"] = (
        VARIANTS["fk"][0],
        [c.execute(d).fetchone()[0] for d, _ in fk],
        [c.execute(e).fetchone()[0] for _, e in fk],
        [],
    )
    remember_src = c.execute("SELECT pg_get_functiondef('memoriesdb.remember(text, jsonb)'::regprocedure)").fetchone()[0]
    without_rev = remember_src.split("INSERT INTO memoriesdb.memory_revisions")[0] + "RETURN new_id;\nEND\n$function$\n"
    VARIANTS["revision"] = (VARIANTS["revision"][0], [without_rev], [], VARIANTS["revision"][3])
    originals = {}
    for _, _, _, restore in VARIANTS.values():
        for sig in restore:
            originals[sig] = c.execute(f"SELECT pg_get_functiondef('{sig}'::regprocedure)").fetchone()[0]

    scripts = {
        "vouched": ("be", "SELECT set_config('app.current_user', o.id::text, true) FROM bench.owners AS o WHERE o.n = 1;"),
        "proven": ("app", "SELECT memoriesdb.authenticate(o.api_key) FROM bench.owners AS o WHERE o.n = 1;"),
    }
    tmpd = Path(tempfile.mkdtemp())
    for name, (_, ctx) in scripts.items():
        (tmpd / f"{name}.sql").write_text(
            f"BEGIN;\n{ctx}\nSELECT memoriesdb.remember('benchmark memory ' || random(), '{{\"src\": \"bench\"}}');\nEND;\n"
        )

    conns = {
        m: psycopg.connect(psycopg.conninfo.make_conninfo(dsn, user=logins[scripts[m][0]][0]), autocommit=True) for m in scripts
    }
    pids = {m: cn.execute("SELECT pg_backend_pid()").fetchone()[0] for m, cn in conns.items()}
    arg = {
        m: c.execute(f"SELECT {'api_key' if m == 'proven' else 'id::text'} FROM bench.owners WHERE n = 1").fetchone()[0]
        for m in scripts
    }

    def cpu(mode: str) -> float:
        """CPU time of the backend per transaction, in µs: what the server spends, whatever else runs on the
        machine (the wall clock on a shared machine moves by more than the components measured)."""
        cn = conns[mode]
        ctx = "SELECT memoriesdb.authenticate(%s)" if mode == "proven" else "SELECT set_config('app.current_user', %s, true)"

        def run(k: int) -> None:
            for _ in range(k):
                with cn.transaction():
                    cn.execute(ctx, (arg[mode],))
                    cn.execute("SELECT memoriesdb.remember('benchmark memory ' || random(), '{\"src\": \"bench\"}')")

        run(20)  # plans, caches
        stat = Path(f"/proc/{pids[mode]}/schedstat")
        t0 = int(stat.read_text().split()[0])
        run(args.transactions)
        return (int(stat.read_text().split()[0]) - t0) / 1000 / args.transactions

    c.execute("CREATE TABLE bench.plain (LIKE memoriesdb.memories INCLUDING DEFAULTS, PRIMARY KEY (id))")
    c.execute(f"GRANT INSERT ON bench.plain TO {logins['app'][0]}")
    uid = c.execute("SELECT id FROM bench.owners WHERE n = 1").fetchone()[0]
    pc = psycopg.connect(psycopg.conninfo.make_conninfo(dsn, user=logins["app"][0]), autocommit=True)
    ppid = pc.execute("SELECT pg_backend_pid()").fetchone()[0]

    def plain_run(k: int) -> None:
        for _ in range(k):
            with pc.transaction():
                pc.execute(
                    "INSERT INTO bench.plain (owner_id, content, metadata, content_hash, created_at, created_by, "
                    "updated_at, updated_by) SELECT %s, x.c, '{\"src\": \"bench\"}', sha256(convert_to(x.c, 'UTF8')), "
                    "now(), %s, now(), %s FROM (SELECT 'benchmark memory ' || random() AS c) AS x",
                    (uid, uid, uid),
                )

    plain_run(20)
    t0 = int(Path(f"/proc/{ppid}/schedstat").read_text().split()[0])
    plain_run(args.transactions)
    plain_cpu = (int(Path(f"/proc/{ppid}/schedstat").read_text().split()[0]) - t0) / 1000 / args.transactions
    pc.close()

    names = [n for n in VARIANTS if not args.only or n in args.only.split(",")]
    deltas = {(n, m): [] for n in names for m in scripts}
    full = {m: [] for m in scripts}
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for nm in order:
            _, apply, revert, restore = VARIANTS[nm]
            for m in scripts:
                # A B B A: the pair's mean difference cancels a drift of the machine's load
                a1 = cpu(m)
                with c.transaction():
                    for s in apply:
                        c.execute(s)
                b1 = cpu(m)
                b2 = cpu(m)
                with c.transaction():
                    for s in revert:
                        c.execute(s)
                    for sig in restore:
                        c.execute(originals[sig])
                a2 = cpu(m)
                full[m] += [a1, a2]
                deltas[(nm, m)].append((a1 + a2 - b1 - b2) / 2)
    stats = {}
    c.execute("ALTER DATABASE " + db + " SET track_functions = 'all'")
    for m in scripts:  # new sessions, with track_functions = all
        conns[m].close()
        conns[m] = psycopg.connect(psycopg.conninfo.make_conninfo(dsn, user=logins[scripts[m][0]][0]), autocommit=True)
        pids[m] = conns[m].execute("SELECT pg_backend_pid()").fetchone()[0]
    for m in scripts:
        c.execute("SELECT pg_stat_reset()")
        cpu(m)
        conns[m].execute("SELECT pg_stat_force_next_flush()")
        stats[m] = c.execute(
            "SELECT schemaname || '.' || funcname, calls, self_time, total_time FROM pg_stat_user_functions "
            "ORDER BY self_time DESC"
        ).fetchall()
    c.close()
    for cn in conns.values():
        cn.close()
    if not args.keep:
        with psycopg.connect(admin, autocommit=True) as su:
            drop_db(su, db)
            for login, _ in logins.values():
                su.execute(f"DROP ROLE IF EXISTS {login}")
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    n = args.transactions
    nt = n + 20  # with the warm-up
    out = [
        "# Where remember()'s time goes",
        "",
        f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}, `bench/remember_profile.py` at {head.strip()}, {os.cpu_count()} cores. "
        f"1 client, {n} transactions per measurement, {args.rounds} rounds; the whole transaction "
        "(BEGIN, context, remember(), COMMIT): the server process's CPU time per transaction with everything, minus "
        "the same with one component switched off (median of the rounds). Whole transaction with everything: "
        + ", ".join(f"{m} {statistics.median(v):.0f} µs" for m, v in full.items())
        + f"; a plain INSERT of the same row (primary key only): {plain_cpu:.0f} µs.",
        "",
        "| component switched off | vouched µs | proven µs |",
        "|---|---|---|",
    ]
    for nm in names:
        out.append(
            f"| {nm}: {VARIANTS[nm][0]} | {statistics.median(deltas[(nm, 'vouched')]):.0f} "
            f"| {statistics.median(deltas[(nm, 'proven')]):.0f} |"
        )
    out += [
        "",
        f"Functions, track_functions = all ({n} transactions; per remember(); instrumented, so slower):",
        "",
        "| function | calls | vouched self µs | vouched total µs | proven self µs | proven total µs |",
        "|---|---|---|---|---|---|",
    ]
    pv = {r[0]: r for r in stats["proven"]}
    for f, calls, self_t, tot in stats["vouched"]:
        p = pv.get(f, (f, 0, 0.0, 0.0))
        out.append(
            f"| {f} | {calls / nt:g} | {self_t * 1000 / nt:.0f} | {tot * 1000 / nt:.0f} | {p[2] * 1000 / nt:.0f} "
            f"| {p[3] * 1000 / nt:.0f} |"
        )
    for f, calls, self_t, tot in stats["proven"]:
        if f not in {r[0] for r in stats["vouched"]}:
            out.append(f"| {f} | {calls / nt:g} | – | – | {self_t * 1000 / nt:.0f} | {tot * 1000 / nt:.0f} |")
    text_out = "\n".join(out) + "\n"
    Path(args.out).write_text(text_out)
    print(text_out)


if __name__ == "__main__":
    main()
