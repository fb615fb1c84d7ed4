"""Peak memory of `memoriesdb ingest` (issue 18): a file of --mb megabytes of plain text lines of
--line-bytes bytes, ingested by the real command in a child process; its peak RSS (ru_maxrss of the
child, from wait4) and wall time, for HEAD and for an older checkout of the runner (--before DIR: a
directory holding that version's memoriesdb_runner package, e.g. from
`git archive 2692097 runner/memoriesdb_runner | tar -x -C /tmp/before`, then --before /tmp/before/runner).
A second HEAD run of the same file measures the re-run (every line skipped by its idempotency key).

With --short-lines SECONDS (many short lines, where per-line overhead dominates; ingesting them all
would take hours here): the older version is run with an application DSN that refuses connections, so
it stops right after its first step, reading the whole file into memory, which is its peak; HEAD is
interrupted (SIGINT, as Ctrl-C) after SECONDS of streaming, its memory being flat from the first batch.

Usage: .venv/bin/python bench/ingest_memory.py [--mb 200] [--line-bytes 4000] [--before DIR] [--db NAME]
                                               [--short-lines SECONDS] [--out FILE] [--smoke]
Writes bench/results/ingest_memory.md (--short-lines: appends to it). Drops and creates database NAME
(default memoriesdb_bench_ingest), and drops it (with its logger role) at the end.
--smoke: a 1 MB file, results to a temporary file unless --out (checks that the benchmark still runs).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "runner"))

from memoriesdb_runner import admin  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from audit_chain import drop_db  # noqa: E402


def make_file(path: Path, mb: int, line_bytes: int) -> int:
    word = b"lorem ipsum dolor sit amet consectetur adipiscing elit "
    body = (word * (line_bytes // len(word) + 1))[: line_bytes - 12]
    n = (mb * 1_000_000) // line_bytes
    with path.open("wb") as fh:
        for i in range(n):
            fh.write(b"%010d " % i + body + b"\n")
    return n


def run(code_dir: Path, file: Path, env: dict[str, str], interrupt_after: float | None = None) -> tuple[float, float, int, str]:
    """(peak RSS in MB, seconds, exit code, last output line) of one ingest run."""
    t = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "memoriesdb_runner.cli", "ingest", str(file), "--batch", "500"],
        cwd=code_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    if interrupt_after is not None:
        timer = threading.Timer(interrupt_after, proc.send_signal, (signal.SIGINT,))
        timer.start()
    out = proc.stdout.read().decode(errors="replace")  # type: ignore[union-attr]
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    lines = [line for line in out.splitlines() if line.strip()]
    return usage.ru_maxrss / 1024, time.perf_counter() - t, proc.returncode, lines[-1] if lines else ""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--line-bytes", type=int, default=4000)
    ap.add_argument("--before", type=Path, help="directory containing the older memoriesdb_runner package")
    ap.add_argument("--db", default="memoriesdb_bench_ingest")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--short-lines", type=float, metavar="SECONDS")
    ap.add_argument("--smoke", action="store_true", help="a 1 MB file: checks that the benchmark still runs")
    args = ap.parse_args()
    if args.smoke:
        args.mb = 1
    if args.out is None:
        args.out = Path(tempfile.mkstemp(suffix=".md")[1]) if args.smoke else ROOT / "bench/results/ingest_memory.md"
    if args.short_lines:
        return short_lines(args)
    host = "127.0.0.1:5432"
    with psycopg.connect(f"postgresql://postgres@{host}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {args.db} WITH (FORCE)")
    admin_dsn = f"postgresql://postgres@{host}/{args.db}"
    admin.deploy(admin_dsn)
    admin.ensure_local_logins(admin_dsn)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMORIESDB_")}
    env.update(MEMORIESDB_APP_DSN=f"postgresql://memoriesdb_client@{host}/{args.db}", MEMORIESDB_PROJECT_DIR=str(ROOT))
    file = Path(f"/tmp/{args.db}.txt")
    n = make_file(file, args.mb, args.line_bytes)
    size_mb = file.stat().st_size / 1e6
    rows = []
    runs = [("HEAD, first run", ROOT / "runner"), ("HEAD, re-run (all lines already stored)", ROOT / "runner")]
    if args.before:
        runs.insert(0, (f"before ({args.before})", args.before))
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        for label, code in runs:
            uid = conn.execute("SELECT memoriesdb.create_user(%s)", (f"bench{len(rows)}",)).fetchone()[0]
            key = conn.execute("SELECT memoriesdb.create_api_key(%s)", (uid,)).fetchone()[0]
            if "re-run" in label:  # the same user as the first HEAD run
                uid, key = rows[-1][-2:]
            rss, secs, code_, last = run(code, file, {**env, "MEMORIESDB_API_KEY": key})
            stored = conn.execute("SELECT count(*) FROM memoriesdb.memories WHERE owner_id = %s", (uid,)).fetchone()[0]
            print(f"{label}: peak RSS {rss:.0f} MB, {secs:.1f} s, exit {code_}, {stored} memories; {last}", flush=True)
            rows.append((label, rss, secs, code_, stored, uid, key))
    file.unlink()
    with psycopg.connect(f"postgresql://postgres@{host}/postgres", autocommit=True) as conn:
        drop_db(conn, args.db)
    lines = [
        "# `memoriesdb ingest`: peak memory (issue 18)",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, `bench/ingest_memory.py --mb {args.mb} --line-bytes {args.line_bytes}`: "
        f"a {size_mb:.0f} MB plain text file of {n} lines, ingested by `python -m memoriesdb_runner.cli ingest FILE "
        "--batch 500` into a fresh database on the local PostgreSQL; peak RSS of the child process (ru_maxrss).",
        "",
        "| run | peak RSS | wall time | exit | memories of the user after the run |",
        "|---|---|---|---|---|",
        *(f"| {r[0]} | {r[1]:.0f} MB | {r[2]:.0f} s | {r[3]} | {r[4]} |" for r in rows),
        "",
        "Before: the whole file is read into a list of records first, so memory grows with the file. "
        "HEAD: streamed, one batch of lines (500) in memory at a time, so memory is flat whatever the file size; "
        "the re-run stores nothing (every line's idempotency key is already there).",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")


def short_lines(args) -> None:
    host = "127.0.0.1:5432"
    with psycopg.connect(f"postgresql://postgres@{host}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {args.db} WITH (FORCE)")
    admin_dsn = f"postgresql://postgres@{host}/{args.db}"
    admin.deploy(admin_dsn)
    admin.ensure_local_logins(admin_dsn)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMORIESDB_")}
    env.update(MEMORIESDB_APP_DSN=f"postgresql://memoriesdb_client@{host}/{args.db}", MEMORIESDB_PROJECT_DIR=str(ROOT))
    file = Path(f"/tmp/{args.db}.txt")
    n = make_file(file, args.mb, args.line_bytes)
    size_mb = file.stat().st_size / 1e6
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        uid = conn.execute("SELECT memoriesdb.create_user('short')").fetchone()[0]
        key = conn.execute("SELECT memoriesdb.create_api_key(%s)", (uid,)).fetchone()[0]
        env["MEMORIESDB_API_KEY"] = key
        rows = []
        if args.before:
            refused = {**env, "MEMORIESDB_APP_DSN": f"postgresql://memoriesdb_client@127.0.0.1:1/{args.db}"}
            rss, secs, code, last = run(args.before, file, refused)
            rows.append((f"before ({args.before}): reads the whole file, then fails to connect", rss, secs, code, 0))
            print(rows[-1], last, flush=True)
        rss, secs, code, last = run(ROOT / "runner", file, env, interrupt_after=args.short_lines)
        stored = conn.execute("SELECT count(*) FROM memoriesdb.memories WHERE owner_id = %s", (uid,)).fetchone()[0]
        rows.append((f"HEAD: streaming, interrupted (SIGINT) after {args.short_lines:.0f} s", rss, secs, code, stored))
        print(rows[-1], last, flush=True)
    file.unlink()
    with psycopg.connect(f"postgresql://postgres@{host}/postgres", autocommit=True) as conn:
        drop_db(conn, args.db)
    lines = [
        "",
        f"## Short lines: {size_mb:.0f} MB of {n} lines of {args.line_bytes} bytes",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, `bench/ingest_memory.py --mb {args.mb} --line-bytes {args.line_bytes} "
        f"--short-lines {args.short_lines:.0f}`. Ingesting all of them takes hours on this machine, so: the older version "
        "with an application DSN that refuses connections (it reads the whole file into memory before it connects: "
        "that read is its peak), and HEAD interrupted as by Ctrl-C after a while of streaming.",
        "",
        "| run | peak RSS | wall time | exit | memories stored |",
        "|---|---|---|---|---|",
        *(f"| {r[0]} | {r[1]:.0f} MB | {r[2]:.0f} s | {r[3]} | {r[4]} |" for r in rows),
        "",
    ]
    with args.out.open("a") as fh:
        fh.write("\n".join(lines))
    print(f"appended to {args.out}")


if __name__ == "__main__":
    main()
