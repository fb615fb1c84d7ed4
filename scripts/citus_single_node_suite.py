#!/usr/bin/env python3
"""The single-node pgTAP suite (db/tests/*.sql) through the coordinator of a Citus ledger (issue 17).

Each single-node file runs in one transaction rolled back at the end and acts as its users with
tests.act_as() (a bare uuid set with set_config(), believed because the test's session is a superuser, which
counts as a backend). Neither works on Citus (docs/citus.md, sections 1 and 8): a bare uuid is nobody on every
node, and in one transaction Citus cannot read a shard another role's connection wrote. So each file is
*translated* first, then run on a copy of a freshly deployed ledger of its own:

- db/citus/single_node_helpers.sql replaces tests.act_as(), tests.clear_context() and tests.memory_of() with
  versions that vouch (memoriesdb.vouch(): the superuser is a backend there too), as a backend on Citus does;
- the file's outer BEGIN ... ROLLBACK is dropped and every statement runs in a transaction of its own, which
  first re-applies the context the file set last (its act_as(), authenticate(), vouch(), SET LOCAL or
  set_config(..., true) statements since the last act_as()/clear_context()); a SAVEPOINT ... ROLLBACK TO
  SAVEPOINT stretch (the tamper tests) runs as one transaction, rolled back;
- files that manage their own transactions (10-session, 27-as-of) keep them (a SET LOCAL ROLE becomes
  set_config('role', ..., true): Citus would propagate it to worker connections of other roles);
- the access-log loggers a file switched off are LOGIN again after it (roles are the cluster's, shared by the copies).
- GRANT ... IN SCHEMA pg_temp (the test's own temporary functions) runs with DDL propagation off: Citus sent it
  to the workers, which have no such schema in their sessions ("schema pg_temp does not exist").

    scripts/citus_single_node_suite.py [FILE ...]          translate and run (default: db/tests/*.sql)
      --base NAME       the deployed ledger to copy (default mdb_suite_base), with pgTAP, db/test_helpers.sql and
                        db/citus/single_node_helpers.sql; --deploy makes it first, --drop drops it at the end
      --keep            keep each file's copy; --out DIR: each file's translation and output; --timeout SECONDS
      --translate-only DIR  write the translations only
      --expect FILE     db/citus/single_node_suite.tsv (file, status, why): run the files listed "passes" (or
                        the FILEs named), exit 1 when one of those fails

Every copy is CREATE DATABASE ... TEMPLATE on each node (the Citus metadata and shards copy with it: a node's
database of the same name holds the copy's shards). CITUS_PORT (default 9700) and the two ports after it.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PORT = int(os.environ.get("CITUS_PORT", "9700"))


# --- splitting a psql script into statements and meta-commands --------------------------------------------------


def split_units(text: str) -> list[tuple[str, str, int]]:
    """(kind, text, line) units: kind 'sql' (text ends with ';' or a \\g... meta-command) or 'meta' (a backslash
    line of its own). Comments between statements are dropped; quotes, dollar quotes and comments are respected."""
    units: list[tuple[str, str, int]] = []
    buf: list[str] = []
    start_line = 1
    i, n, line = 0, len(text), 1

    def flush(kind: str, s: str) -> None:
        nonlocal buf
        s = s.strip()
        if s:
            units.append((kind, s, start_line))
        buf = []

    while i < n:
        c = text[i]
        if not "".join(buf).strip():
            start_line = line
        if c == "\n":
            line += 1
            buf.append(c)
            i += 1
        elif text.startswith("--", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            if "".join(buf).strip():
                buf.append(text[i:j])
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            line += text.count("\n", i, j)
            buf.append(text[i:j])
            i = j
        elif c == "'" or c == '"':
            # E'...' strings: backslash escapes
            escaped = c == "'" and i > 0 and text[i - 1] in "eE" and (i < 2 or not (text[i - 2].isalnum() or text[i - 2] == "_"))
            j = i + 1
            while j < n:
                if escaped and text[j] == "\\":
                    j += 2
                    continue
                if text[j] == c:
                    if j + 1 < n and text[j + 1] == c:
                        j += 2
                        continue
                    break
                j += 1
            line += text.count("\n", i, j + 1)
            buf.append(text[i : j + 1])
            i = j + 1
        elif c == "$":
            m = re.match(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$", text[i:])
            if m and not (i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_")):
                tag = m.group(0)
                j = text.find(tag, i + len(tag))
                j = n if j < 0 else j + len(tag)
                line += text.count("\n", i, j)
                buf.append(text[i:j])
                i = j
            else:
                buf.append(c)
                i += 1
        elif c == ";":
            buf.append(c)
            flush("sql", "".join(buf))
            i += 1
        elif c == "\\":
            j = text.find("\n", i)
            j = n if j < 0 else j
            cmd = text[i:j].strip()
            if "".join(buf).strip():
                buf.append(" " + cmd)
                flush("sql", "".join(buf))
            else:
                start_line = line
                flush("meta", cmd)
            i = j
        else:
            buf.append(c)
            i += 1
    if "".join(buf).strip():
        flush("sql", "".join(buf))
    return units


# --- the translation ------------------------------------------------------------------------------------------

KEYWORD = re.compile(r"^\s*(\w+)(?:\s+(\w+))?(?:\s+(\w+))?", re.S)


def norm(s: str) -> str:
    return re.sub(r"\s+", " ", s.strip().rstrip(";").strip()).upper()


def is_context_statement(s: str) -> str | None:
    """'reset' (act_as/clear_context/SET SESSION AUTHORIZATION: the context starts again), 'add' (a statement that
    adds to the transaction's context: SET LOCAL, set_config(…, true), authenticate(), vouch()), or None."""
    t = re.sub(r"\s+", " ", s.strip())
    if re.fullmatch(r"SELECT tests\.(act_as|clear_context)\([^;]*\)\s*;", t):
        return "reset"
    if re.match(r"(?i)(RESET|SET) SESSION AUTHORIZATION", t):
        return "session"
    if re.match(r"(?i)SET LOCAL ", t):
        return "add"
    if re.match(r"(?is)SELECT (is|isnt|ok)\(memoriesdb\.(authenticate|vouch)\(", t):
        return "add-call"
    if re.fullmatch(
        r"(?is)SELECT (memoriesdb\.authenticate|memoriesdb\.vouch|set_config)\(.*\)( AS \w+)?\s*(;|\\gset.*)", t
    ) and ("set_config" not in t or re.search(r"(?i),\s*true\s*\)", t)):
        return "add"
    return None


def set_local_role(text: str) -> str:
    """SET LOCAL ROLE r as set_config('role', r, true), as tests.act_as() switches roles: the same role for the rest of
    the transaction on the coordinator, not propagated. Citus propagates a SET LOCAL to the transaction's worker
    connections, opened as the roles of the calls before it (memoriesdb_owner, memoriesdb_reader), which may not SET
    ROLE to it ("permission denied to set role", then "failure on connection marked as essential": 27-as-of, a
    superuser becoming the app role mid-transaction, docs/citus.md section 8)."""
    m = re.fullmatch(r"(?i)SET\s+LOCAL\s+ROLE\s+(\w+)\s*;", text.strip())
    if not m:
        return text
    return f"SELECT set_config('role', '{m.group(1)}', true) AS citus_suite_role \\gset"


def wrapped(units: list[tuple[str, str, int]]) -> bool:
    sql = [u for u in units if u[0] == "sql"]
    return bool(sql) and norm(sql[0][1]) in ("BEGIN", "START TRANSACTION") and norm(sql[-1][1]) == "ROLLBACK"


def translate(src: Path) -> str:
    units = split_units(src.read_text())
    out = [
        f"-- {src.name}, translated by scripts/citus_single_node_suite.py (each statement commits)",
        "\\set ON_ERROR_STOP 0",
        "SET client_min_messages = warning;",
    ]
    if not wrapped(units):
        # the file manages its own transactions: run as it is, with the helpers that vouch
        for kind, text, line in units:
            out.append(f"-- @L{line}")
            out.append(set_local_role(text) if kind == "sql" else text)
        return "\n".join(out) + "\n"
    sql_idx = [k for k, u in enumerate(units) if u[0] == "sql"]
    units = [u for k, u in enumerate(units) if k not in (sql_idx[0], sql_idx[-1])]
    # the last ROLLBACK TO SAVEPOINT of each stretch: where a tamper transaction ends for good
    rollback_to = [k for k, u in enumerate(units) if u[0] == "sql" and norm(u[1]).startswith("ROLLBACK TO")]
    prelude: list[str] = []  # the context: the last act_as() and what was added to it since
    sticky: dict[str, str] = {}  # SET LOCAL of anything else (application_name, bounds): the whole file's, the last of each
    in_block = False
    for k, (kind, text, line) in enumerate(units):
        out.append(f"-- @L{line}")
        if kind == "meta":
            out.append(text)
            continue
        n = norm(text)
        if re.match(r"GRANT .* IN SCHEMA PG_TEMP\b", n):
            # the coordinator session's own temporary functions: nothing on the workers to grant (Citus propagated it:
            # 17-input-bounds, 33-models, 35-import-embeddings)
            # (on again after it: the GRANT is re-applied at the start of every later transaction, whose DDL, e.g.
            # activate_model()'s retype of memories.embedding, must still reach the shards)
            text = "SET LOCAL citus.enable_ddl_propagation = off;\n" + text + "\nSET LOCAL citus.enable_ddl_propagation = on;"
        if n.startswith("SAVEPOINT"):
            out.append("BEGIN;")
            out.extend(list(sticky.values()) + prelude)
            in_block = True
            continue
        if n.startswith("ROLLBACK TO"):
            out.append("ROLLBACK;")
            in_block = False
            if any(r > k for r in rollback_to):
                out.append("BEGIN;")
                out.extend(list(sticky.values()) + prelude)
                in_block = True
            continue
        if n.startswith("RELEASE"):
            out.append("COMMIT;")
            in_block = False
            continue
        what = is_context_statement(text)
        if what == "reset":
            prelude = [] if "clear_context" in text else [text]
            if in_block:
                out.append(text)
            continue
        if what == "session":
            # a context vouched as the superuser is no one's after it (the login is not a backend); SET LOCALs stay
            prelude = [p for p in prelude if "tests.act_as" not in p]
            out.append(text)
            continue
        if what == "add" and re.match(r"(?i)\s*SET LOCAL ", text) and not re.match(r"(?i)\s*SET LOCAL (app\.|ROLE\b)", text):
            name = re.match(r"(?i)\s*SET LOCAL\s+([\w.]+)", text).group(1).lower()
            sticky.pop(name, None)
            if not re.match(r"(?i)\s*SET LOCAL session_replication_role\s*(=|TO)\s*'?origin", text):  # (back to the default)
                sticky[name] = text
            what = "sticky"
        m = re.fullmatch(r"(?i)RESET\s+([\w.]+)\s*;", text.strip())
        if m and m.group(1).lower() not in ("role", "all", "session"):  # (a RESET ends a SET LOCAL of it, as on one node)
            sticky.pop(m.group(1).lower(), None)
        m = re.fullmatch(r"(?is)SELECT set_config\('([\w.]+)',.*,\s*true\)\s*;", text.strip())
        if what == "add" and m and not m.group(1).startswith("app.") and m.group(1) != "role":
            sticky.pop(m.group(1).lower(), None)
            sticky[m.group(1).lower()] = text
            what = "sticky"
        if in_block:
            out.append(text)
            if what == "add":
                prelude.append(text)
            continue
        # a temporary table the file drops at its (one) commit lives as long here
        text = re.sub(r"(?i)(CREATE TEMP(ORARY)? TABLE \w+) ON COMMIT DROP", r"\1", text)
        out.append("BEGIN;")
        out.extend(list(sticky.values()) + prelude)
        out.append(text)
        out.append("COMMIT;")
        if what == "add-call":
            # is(memoriesdb.authenticate(key), ...): the call alone, for the statements after it
            m = re.search(r"memoriesdb\.(authenticate|vouch)\((:'\w+'|'[^']*')\)", text)
            if m:
                prelude.append(f"SELECT {m.group(0)} \\gset pre_")
        if what == "add":
            # a context statement's own \gset variables stay; the prelude re-runs it without changing them
            prelude.append(re.sub(r"\\gset.*$", "\\\\gset pre_", text) if "\\gset" in text else text)
    if in_block:
        out.append("ROLLBACK;")
    return "\n".join(out) + "\n"


# --- running ---------------------------------------------------------------------------------------------------


def psql(port: int, db: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["psql", "-qAtX", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", db, *args],
        capture_output=True,
        text=True,
        check=check,
    )


def clone(base: str, new: str) -> None:
    for p in (PORT, PORT + 1, PORT + 2):
        for _attempt in range(10):
            r = psql(
                p,
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                "SET client_min_messages = warning",
                "-c",
                f"DROP DATABASE IF EXISTS {new} WITH (FORCE)",
                # the template must be idle on each node: Citus's maintenance daemon and cached connections end
                # here (and may come back at once: then again)
                "-c",
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                f" WHERE datname = '{base}' AND pid <> pg_backend_pid()",
                "-c",
                f"CREATE DATABASE {new} TEMPLATE {base}",
                check=False,
            )
            if r.returncode == 0:
                break
            time.sleep(0.5)
        else:
            raise RuntimeError(f"cannot copy {base} on port {p}: {r.stderr.strip()}")


def deploy_base(base: str) -> None:
    """A fresh ledger (scripts/citus.sh deploy), pgTAP, the single-node helpers and their Citus versions."""
    subprocess.run(["bash", "scripts/citus.sh", "deploy", base], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    psql(
        PORT,
        base,
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        "SET client_min_messages = warning",
        "-c",
        "CREATE EXTENSION IF NOT EXISTS pgtap",
    )
    for f in ("db/test_helpers.sql", "db/citus/single_node_helpers.sql"):
        psql(PORT, base, "-v", "ON_ERROR_STOP=1", "-c", "SET client_min_messages = warning", "-f", str(ROOT / f))


def dropdb(db: str) -> None:
    for p in (PORT, PORT + 1, PORT + 2):
        psql(
            p,
            "postgres",
            "-c",
            "SET client_min_messages = warning",
            "-c",
            f"DROP DATABASE IF EXISTS {db} WITH (FORCE)",
            check=False,
        )


def role_names() -> set[str]:
    return set(psql(PORT, "postgres", "-c", "SELECT rolname FROM pg_roles").stdout.split())


def logins_off(names: set[str]) -> set[str]:
    """Of the roles names, those that cannot log in (on the coordinator)."""
    if not names:
        return set()
    listed = ", ".join(f"'{n}'" for n in sorted(names))
    return set(
        psql(
            PORT, "postgres", "-c", f"SELECT rolname FROM pg_roles WHERE NOT rolcanlogin AND rolname IN ({listed})"
        ).stdout.split()
    )


def each_role_on_every_node(names: set[str], propagation: str, statement: str) -> None:
    """statement (a template of {role}) for each role, on every node, with the role command's propagation off."""
    for p in (PORT, PORT + 1, PORT + 2):
        for r in sorted(names):
            psql(p, "postgres", "-c", "SET client_min_messages = warning", "-c", f"SET citus.{propagation} = off",
                 "-c", statement.format(role=r), check=False)  # fmt: skip


def restore_logins(names: set[str]) -> None:
    """The access-log loggers a file switched off, LOGIN again on every node. 27-as-of switches its ledger's logger off
    (ALTER ROLE ... NOLOGIN) and sets it up again with setup_access_logger(); on a copy that makes a new logger, named
    after the copy's database, and leaves the template's (whose name the copy inherited) off: every file copied after it
    then failed to log its reads ("cannot connect the logger"). Roles are the cluster's, not the copy's."""
    each_role_on_every_node(names, "enable_alter_role_propagation", 'ALTER ROLE "{role}" LOGIN')


def drop_roles(names: set[str]) -> None:
    """The logins a file created (CREATE ROLE commits here): roles are the cluster's, not the copy's."""
    each_role_on_every_node(names, "enable_create_role_propagation", 'DROP ROLE IF EXISTS "{role}"')


def tap_summary(out: str) -> tuple[int, int, int, list[str]]:
    """(planned, passed, failed, failed descriptions)"""
    planned = 0
    m = re.search(r"^1\.\.(\d+)", out, re.M)
    if m:
        planned = int(m.group(1))
    ok = re.findall(r"^ok \d+", out, re.M)
    bad = re.findall(r"^not ok \d+ - (.*)$", out, re.M)
    return planned, len(ok), len(bad), bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*")
    ap.add_argument("--base", default="mdb_suite_base")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--translate-only")
    ap.add_argument("--out", default=None, help="directory for each file's translation and output")
    ap.add_argument("--expect", help="the file of expected outcomes: run those that pass, fail when one does not")
    ap.add_argument("--timeout", type=int, default=300, help="seconds a file may run (default 300)")
    ap.add_argument("--deploy", action="store_true", help="deploy the base first (scripts/citus.sh deploy, pgTAP, the helpers)")
    ap.add_argument("--drop", action="store_true", help="drop the base at the end (scripts/citus.sh dropdb)")
    args = ap.parse_args()
    files = [Path(f) for f in args.files] or sorted((ROOT / "db/tests").glob("*.sql"))
    if args.translate_only:
        d = Path(args.translate_only)
        d.mkdir(parents=True, exist_ok=True)
        for f in files:
            (d / f.name).write_text(translate(f))
        return 0
    outdir = Path(args.out) if args.out else None
    if outdir:
        outdir.mkdir(parents=True, exist_ok=True)
    expect: dict[str, str] = {}
    if args.expect:
        for row in Path(args.expect).read_text().splitlines():
            if row.strip() and not row.startswith("#"):
                name, status = row.split("\t")[:2]
                expect[name] = status
    if args.deploy:
        deploy_base(args.base)
    if expect and not args.files:  # the files known to pass (the others fail for reasons listed in FILE)
        files = [f for f in files if expect.get(f.name) == "passes"]
    unexpected = 0
    for f in files:
        db = f"{args.base}_{re.sub(r'[^a-z0-9]', '_', f.stem.lower())}"[:63]
        t0 = time.time()
        roles_before = role_names()
        loggers = {r for r in roles_before if r.startswith("memoriesdb_log_")}
        loggers_off = logins_off(loggers)
        clone(args.base, db)
        script = translate(f)
        try:
            r = subprocess.run(
                [
                    "psql",
                    "-X",
                    "--no-align",
                    "--tuples-only",
                    "--pset",
                    "pager=off",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(PORT),
                    "-U",
                    "postgres",
                    "-d",
                    db,
                    "-f",
                    "-",
                ],
                input=script,
                capture_output=True,
                text=True,
                cwd=ROOT / "db/tests",
                timeout=args.timeout,
            )
            stdout, stderr, timed_out = r.stdout, r.stderr, False
        except subprocess.TimeoutExpired as e:  # (a call that waits for a lock forever: psql is killed)
            stdout = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            stderr = (e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")) + f"\nTIMEOUT after {args.timeout}s"
            timed_out = True
        out = stdout + stderr
        planned, ok, bad, bad_names = tap_summary(stdout)
        errors = len(re.findall(r"ERROR:", stderr))
        passes = planned > 0 and ok == planned and bad == 0 and errors == 0 and not timed_out
        status = "passes" if passes else ("timeout" if timed_out else "fails")
        flag = ""
        if f.name in expect and expect[f.name] == "passes" and not passes:
            flag, unexpected = "  UNEXPECTED", unexpected + 1
        print(
            f"{f.name:32} {status:6} planned {planned:3} ok {ok:3} not ok {bad:3} errors {errors:3} "
            f"({time.time() - t0:.0f}s){flag}",
            flush=True,
        )
        if outdir:
            (outdir / (f.stem + ".translated.sql")).write_text(script)
            (outdir / (f.stem + ".out")).write_text(out)
        restore_logins(logins_off(loggers) - loggers_off)
        if not args.keep:
            dropdb(db)
            # (and the logger a file's setup_access_logger() made for its copy)
            drop_roles({r for r in role_names() - roles_before if r.startswith(("t_", "mdb_", "memoriesdb_log_"))})
    if args.drop:
        subprocess.run(["bash", "scripts/citus.sh", "dropdb", args.base], cwd=ROOT, check=False, stdout=subprocess.DEVNULL)
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
