"""What does remember() cost beyond a plain INSERT of the same row (issue 14, part 1)? One run, one fresh database,
pgbench (C clients, prepared statements, each transaction timed whole: BEGIN, context, call, COMMIT):

  plain    INSERT of the same row (memories' columns, content hash computed in SQL) into a table with a primary key
           and nothing else: no trigger, no foreign key, no other index (the baseline of the issue's goals)
  indexed  the same INSERT into a table with memories' indexes too (trigram, full-text, owner, HNSW): what the
           row costs the indexes any ledger would keep (information: not a goal)
  rows     every row remember() writes, with the indexes of the tables they go to, and nothing else: the memory
           (with its full-text vector), its revision, its embedding job, the two audit rows (row images as jsonb,
           each hashed), the chain head's update and the seal (a digest of the rows' hashes), as one statement of
           data-modifying CTEs, no trigger, function, foreign key or check: the floor of this data model, whatever
           the code that writes it (information: where the goal of 2x plain stands)
  proven   a memoriesdb_app login: authenticate(api_key) then remember(), in each transaction (how clients do it)
  vouched  a memoriesdb_backend login: set_config('app.current_user', <uuid>, true) then remember()

each at 1 client (one owner: latency p50/p95 from pgbench's per-transaction log, and tps) and at 8 clients, each
client writing for its own owner (tps). Modes run in turn, `--rounds` times, in a rotating order; latencies are
pooled over rounds, tps is the median of the rounds. Ratios against plain are the goals: remember p50 <= 2x plain,
8 writers >= 0.5x plain throughput. Ends with verify_audit_chain() over everything written.

Usage: python bench/audit_chain.py [--seconds 5] [--rounds 3] [--transactions N (per client per run, instead of
--seconds: the smoke run, e.g. --transactions 20 --rounds 1)] [--db mdb_bench_audit] [--out FILE] [--keep]
Writes bench/results/audit_chain.md (and prints it); uses database --db and logins <db>_app, <db>_be (dropped
at the end unless --keep).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import statistics
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
OWNERS = 8
CONTENT = "'benchmark memory ' || random()"

SETUP = f"""
CREATE SCHEMA bench;
CREATE TABLE bench.owners (n integer PRIMARY KEY, id uuid NOT NULL, api_key text NOT NULL);
INSERT INTO bench.owners
  SELECT g, u.id, memoriesdb.create_api_key(u.id, 'infinity')
    FROM generate_series(1, {OWNERS}) AS g, LATERAL (SELECT memoriesdb.create_user('bench' || g) AS id) AS u;
CREATE TABLE bench.plain (LIKE memoriesdb.memories INCLUDING DEFAULTS, PRIMARY KEY (id));
CREATE TABLE bench.indexed (LIKE memoriesdb.memories INCLUDING DEFAULTS INCLUDING INDEXES);
-- the "rows" mode: the tables remember() writes, with their indexes (no trigger, foreign key or check)
CREATE TABLE bench.r_memories (LIKE memoriesdb.memories INCLUDING DEFAULTS INCLUDING INDEXES);
CREATE TABLE bench.r_revisions (LIKE memoriesdb.memory_revisions INCLUDING DEFAULTS INCLUDING INDEXES);
CREATE TABLE bench.r_schedule (LIKE memoriesdb.embedding_schedule INCLUDING DEFAULTS INCLUDING INDEXES);
CREATE TABLE bench.r_audit (LIKE memoriesdb.audit_log INCLUDING DEFAULTS INCLUDING INDEXES);
CREATE TABLE bench.r_seals (LIKE memoriesdb.audit_seals INCLUDING DEFAULTS INCLUDING INDEXES);
CREATE TABLE bench.r_heads (chain uuid PRIMARY KEY, chain_seq bigint NOT NULL, seal_hash bytea NOT NULL);
INSERT INTO bench.r_heads SELECT id, 0, '\\x00' FROM bench.owners;
CREATE SEQUENCE bench.r_audit_seq;
CREATE SEQUENCE bench.r_seal_seq;
"""

PLAIN = """\\set u :client_id + 1
BEGIN;
INSERT INTO bench.{table} (owner_id, content, metadata, content_hash, created_at, created_by, updated_at, updated_by{extra})
  SELECT o.id, x.c, '{{"src": "bench"}}', sha256(convert_to(x.c, 'UTF8')), now(), o.id, now(), o.id{extra_val}
    FROM bench.owners AS o, (SELECT {content} AS c) AS x WHERE o.n = :u;
END;
"""

ROWS = """\\set u :client_id + 1
BEGIN;
WITH o AS (SELECT id FROM bench.owners WHERE n = :u),
m AS (INSERT INTO bench.r_memories (owner_id, content, metadata, content_hash, created_at, created_by, updated_at,
                                    updated_by, content_tsv)
      SELECT o.id, x.c, '{{"src": "bench"}}', sha256(convert_to(x.c, 'UTF8')), now(), o.id, now(), o.id,
             to_tsvector('english', x.c)
        FROM o, (SELECT {content} AS c) AS x RETURNING *),
r AS (INSERT INTO bench.r_revisions (memory_id, revision, content_hash, metadata, content_changed, metadata_changed,
                                     created_at, created_by, updated_at, updated_by)
      SELECT m.id, 1, m.content_hash, m.metadata, true, true, now(), m.created_by, now(), m.created_by FROM m RETURNING *),
q AS (INSERT INTO bench.r_schedule (memory_id, model_id, content_hash, created_at, created_by, updated_at, updated_by)
      SELECT m.id, '00000000-0000-0000-0000-000000000001', m.content_hash, now(), m.created_by, now(), m.created_by
        FROM m RETURNING 1),
a AS (INSERT INTO bench.r_audit (id, db_role, table_name, row_id, memory_id, op, new_row, row_hash, login, chain)
      SELECT nextval('bench.r_audit_seq'), current_user, i.t, i.id, i.mid, 'INSERT', i.img,
             sha256(convert_to(i.img::text, 'UTF8')), session_user, i.chain
        FROM (SELECT 'memories' AS t, m.id, m.id AS mid, to_jsonb(m) - 'content_tsv' - 'content_trgm' AS img,
                     m.owner_id AS chain
                FROM m
              UNION ALL
              SELECT 'memory_revisions', r.id, r.memory_id, to_jsonb(r), o.id FROM r, o) AS i
      RETURNING id, row_hash),
h AS (UPDATE bench.r_heads AS h SET chain_seq = h.chain_seq + 1,
             seal_hash = sha256(h.seal_hash || (SELECT string_agg(a.row_hash, ''::bytea ORDER BY a.id) FROM a))
        FROM o WHERE h.chain = o.id RETURNING h.*)
INSERT INTO bench.r_seals (seq, txid, first_id, last_id, row_count, rows_digest, prev_hash, seal_hash, chain, chain_seq)
  SELECT nextval('bench.r_seal_seq'), pg_current_xact_id(), (SELECT min(a.id) FROM a), (SELECT max(a.id) FROM a),
         (SELECT count(*) FROM a), sha256((SELECT string_agg(a.row_hash, ''::bytea ORDER BY a.id) FROM a)), '\\x00',
         h.seal_hash, h.chain, h.chain_seq
    FROM h;
END;
"""

REMEMBER = """\\set u :client_id + 1
BEGIN;
{context}
SELECT memoriesdb.remember({content}, '{{"src": "bench"}}');
END;
"""

SCRIPTS = {
    "plain": PLAIN.format(table="plain", extra="", extra_val="", content=CONTENT),
    "indexed": PLAIN.format(
        table="indexed",
        extra=", content_tsv",
        extra_val=", to_tsvector('english', x.c)",
        content=CONTENT,
    ),
    "rows": ROWS.format(content=CONTENT),
    "proven": REMEMBER.format(
        context="SELECT memoriesdb.authenticate(o.api_key) FROM bench.owners AS o WHERE o.n = :u;", content=CONTENT
    ),
    "vouched": REMEMBER.format(
        context="SELECT set_config('app.current_user', o.id::text, true) FROM bench.owners AS o WHERE o.n = :u;",
        content=CONTENT,
    ),
}
LOGIN = {"plain": "app", "indexed": "app", "rows": "app", "proven": "app", "vouched": "be"}


def drop_db(su: psycopg.Connection, db: str) -> None:
    """DROP DATABASE, and the access log's logger role the ledger made for it (cluster-wide, named after the db)."""
    su.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    su.execute(f"DROP ROLE IF EXISTS memoriesdb_log_{hashlib.md5(db.encode()).hexdigest()[:12]}")


def fresh_ledger(host: str, db: str, verify: bool = True) -> dict[str, tuple[str, str]]:
    """A fresh database with the ledger deployed from this checkout and two logins, <db>_app (memoriesdb_app) and
    <db>_be (memoriesdb_backend): {"app": (login, role), "be": (login, role)}."""
    logins = {"app": (f"{db}_app", "memoriesdb_app"), "be": (f"{db}_be", "memoriesdb_backend")}
    with psycopg.connect(f"postgresql://postgres@{host}/postgres", autocommit=True) as su:
        drop_db(su, db)
        su.execute(f"CREATE DATABASE {db}")
        for login, role in logins.values():
            su.execute(f"DROP ROLE IF EXISTS {login}")
            su.execute(f"CREATE ROLE {login} LOGIN IN ROLE {role}")
    deploy = ["sqitch", "--quiet", "deploy"] + ([] if verify else ["--no-verify"]) + [f"db:pg://postgres@{host}/{db}"]
    subprocess.run(deploy, cwd=ROOT, check=True)
    return logins


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def pgbench(args, db: str, login: str, script: Path, clients: int, logdir: Path | None) -> str:
    cmd = ["pgbench", "-n", "-M", "prepared", "-h", args.host, "-U", login, "-c", str(clients), "-j", str(min(clients, 2))]
    cmd += ["-t", str(args.transactions)] if args.transactions else ["-T", str(args.seconds)]
    if logdir:
        cmd += ["-l", "--log-prefix", str(logdir / "tx")]
    cmd += ["-f", str(script), db]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0 or re.search(r"number of failed transactions: [1-9]", r.stdout):
        raise SystemExit(f"pgbench failed ({' '.join(cmd)}):\n{r.stdout}\n{r.stderr}")
    return r.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5, help="per run (one mode, one client count)")
    ap.add_argument("--transactions", type=int, default=0, help="per client per run, instead of --seconds")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--db", default="mdb_bench_audit")
    ap.add_argument("--host", default=os.environ.get("PGHOST", "127.0.0.1"))
    ap.add_argument("--out", default=str(ROOT / "bench/results/audit_chain.md"))
    ap.add_argument("--keep", action="store_true", help="keep the database and the logins")
    args = ap.parse_args()
    db = args.db
    logins = fresh_ledger(args.host, db, verify=False)
    admin = f"postgresql://postgres@{args.host}/postgres"
    dsn = f"postgresql://postgres@{args.host}/{db}"
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(SETUP)
        for login, _ in logins.values():  # the bounds every ledger login gets (see memoriesdb.unbounded_logins())
            c.execute("SELECT memoriesdb.configure_login(%s)", (login,))
        for login, _ in logins.values():
            c.execute(f"GRANT USAGE ON SCHEMA bench, memoriesdb_internal TO {login}")
            c.execute(f"GRANT SELECT ON bench.owners TO {login}")
            c.execute(f"GRANT INSERT ON bench.plain, bench.indexed TO {login}")
            c.execute(f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA bench TO {login}")
            c.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA bench TO {login}")
            # the index keyed by owner and word (text_owner_index) calls it; only the ledger's owner may otherwise
            if c.execute("SELECT to_regprocedure('memoriesdb_internal.owner_word_keys(uuid, tsvector)')").fetchone()[0]:
                c.execute(f"GRANT EXECUTE ON FUNCTION memoriesdb_internal.owner_word_keys(uuid, tsvector) TO {login}")
        pg_version = c.execute("SHOW server_version").fetchone()[0]

    lat: dict[str, list[float]] = {m: [] for m in SCRIPTS}
    round_p50: dict[str, list[float]] = {m: [] for m in SCRIPTS}
    tps: dict[tuple[str, int], list[float]] = {(m, n): [] for m in SCRIPTS for n in (1, OWNERS)}
    modes = list(SCRIPTS)
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        for name, body in SCRIPTS.items():
            (tmpd / f"{name}.sql").write_text(body)
        with psycopg.connect(dsn, autocommit=True) as c:
            for r in range(args.rounds):
                order = modes[r % len(modes) :] + modes[: r % len(modes)]
                for m in order:
                    for n in (1, OWNERS):
                        c.execute("CHECKPOINT")
                        logdir = tmpd / f"log_{m}_{r}_{n}"
                        logdir.mkdir()
                        out = pgbench(args, db, logins[LOGIN[m]][0], tmpd / f"{m}.sql", n, logdir if n == 1 else None)
                        tps[(m, n)].append(float(re.search(r"tps = ([0-9.]+)", out).group(1)))
                        if n == 1:
                            for f in logdir.iterdir():  # client_id transaction_no time(us) script_no epoch us
                                this = [int(line.split()[2]) / 1000 for line in f.read_text().splitlines()]
                                lat[m] += this
                                round_p50[m].append(statistics.median(this))
        with psycopg.connect(dsn, autocommit=True) as c:
            ok = c.execute("SELECT ok, rows_checked FROM memoriesdb.verify_audit_chain()").fetchone()
            written = c.execute("SELECT count(*) FROM memoriesdb.memories").fetchone()[0]
    if not args.keep:
        with psycopg.connect(admin, autocommit=True) as su:
            drop_db(su, db)
            for login, _ in logins.values():
                su.execute(f"DROP ROLE IF EXISTS {login}")

    p50 = {m: statistics.median(lat[m]) for m in modes}
    p95 = {m: pct(lat[m], 0.95) for m in modes}
    t = {k: statistics.median(v) for k, v in tps.items()}
    # the ratios: medians of the rounds' ratios (a round's modes ran close together, under the same load)
    rp = {m: statistics.median([a / b for a, b in zip(round_p50[m], round_p50["plain"], strict=True)]) for m in modes}
    rt = {m: statistics.median([a / b for a, b in zip(tps[(m, OWNERS)], tps[("plain", OWNERS)], strict=True)]) for m in modes}
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    run = f"{args.transactions} transactions per client" if args.transactions else f"{args.seconds} s"
    out = [
        "# remember() against a plain INSERT of the same row (issue 14, part 1)",
        "",
        f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}, `bench/audit_chain.py` at {head.strip() or '?'}, PostgreSQL "
        f"{pg_version}, {os.cpu_count()} cores; one fresh database; pgbench (prepared statements), {run} per run, "
        f"{args.rounds} round(s) in rotating order; each transaction timed whole (BEGIN, context, call, COMMIT). "
        f"1 client: one owner; {OWNERS} clients: each writes for its own owner. "
        "plain: INSERT of memories' columns into a table with a primary key only (the goals' baseline); indexed: the "
        "same into a table with memories' indexes; rows: every row remember() writes (memory, revision, job, two "
        "audit rows with their hashes, chain head, seal) with those tables' indexes, as one statement, no trigger or "
        "function (the data model's floor); proven: a memoriesdb_app login, authenticate(api_key) + remember(); "
        "vouched: a memoriesdb_backend login, set_config(app.current_user) + remember(). Ratios: medians of the "
        "rounds' ratios. Wall-clock numbers on a shared machine move with its load: see bench/remember_ab.py --cpu "
        "for the server's CPU time per transaction.",
        "",
        "| mode | p50 ms (1 client) | p95 ms | tps 1 client | tps 8 writers, 8 owners | p50 / plain p50 | tps 8 / plain tps 8 |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in modes:
        out.append(f"| {m} | {p50[m]:.3f} | {p95[m]:.3f} | {t[(m, 1)]:.0f} | {t[(m, OWNERS)]:.0f} | {rp[m]:.2f} | {rt[m]:.2f} |")
    goal = lambda m: (  # noqa: E731
        f"{m}: p50 {rp[m]:.2f}x plain (goal <= 2: {'met' if rp[m] <= 2 else 'NOT met'}), "
        f"8-writer throughput {rt[m]:.2f}x plain "
        f"(goal >= 0.5: {'met' if rt[m] >= 0.5 else 'NOT met'})"
    )
    out += [
        "",
        "Goals: " + goal("proven") + "; " + goal("vouched") + ".",
        "",
        f"Memories written: {written}; verify_audit_chain() afterwards: ok = {ok[0]} over {ok[1]} audit rows.",
    ]
    text_out = "\n".join(out) + "\n"
    Path(args.out).write_text(text_out)
    print(text_out)


if __name__ == "__main__":
    main()
