"""Hostile input and secrets: what a user of the CLI or a local neighbour can feed it.

Each test performs the attack against the real command and the real server: markup and terminal
escapes stored in memories and provider errors, broken and repeated ingest files, API keys and .env
files other local users can read or write, and `memoriesdb deploy` with a DSN that carries a password."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from rich.console import Console

from memoriesdb_runner import cli
from memoriesdb_runner.cli import main
from memoriesdb_runner.db import uninterrupted
from memoriesdb_runner.ingest import IngestResult, _commit_and_count
from memoriesdb_runner.service import run_embed_workers
from memoriesdb_runner.settings import Settings

from .conftest import DB, HOST, PORT, remember
from .test_cli import env_of

RUNNER_DIR = Path(__file__).resolve().parents[1]
PROJECT_DIR = RUNNER_DIR.parent

HOSTILE = [
    "closing [/oops] tag",
    "[link=https://evil.example/]click me[/link]",
    "red \x1b[31mALERT\x1b[0m \x1b]8;;https://evil.example/\x07hyperlink\x1b]8;;\x07 bell\x07 clear\x1b[2J",
]


@pytest.fixture
def wide(monkeypatch):
    """The CLI's console, wide enough that a table never wraps a memory."""
    monkeypatch.setattr(cli, "console", Console(width=400))


def _no_escapes(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text, repr(text)


# --- markup and control characters in what the CLI prints ------------------------------------


def test_search_prints_stored_markup_and_escapes_literally(settings, admin_conn, user, wide):
    uid, key = user
    remember(admin_conn, uid, *HOSTILE)
    assert asyncio.run(run_embed_workers(settings, until_empty=True, install_signals=False)) == 3
    for text in HOSTILE:
        result = CliRunner().invoke(main, ["search", text, "-k", "3"], env={**env_of(settings), "MEMORIESDB_API_KEY": key})
        assert result.exit_code == 0, (result.output, result.exception)
        _no_escapes(result.output)
    out = CliRunner().invoke(main, ["search", HOSTILE[0], "-k", "3"], env={**env_of(settings), "MEMORIESDB_API_KEY": key}).output
    assert "closing [/oops] tag" in out
    assert "[link=https://evil.example/]click me[/link]" in out, "markup is shown, not turned into a hyperlink"
    assert "red [31mALERT[0m" in out and "hyperlink" in out, "control characters are dropped, the text stays"


def test_status_prints_a_hostile_provider_error_literally(settings, admin_conn, user, wide):
    uid, _ = user
    [m] = remember(admin_conn, uid, "will die with a hostile error")
    with admin_conn.transaction():
        admin_conn.execute("SET LOCAL ROLE memoriesdb_worker")
        lease = admin_conn.execute("SELECT lease_id FROM memoriesdb.claim_embedding_jobs(1)").fetchone()["lease_id"]
        admin_conn.execute(
            "SELECT memoriesdb.fail_embedding_job(%s, %s, %s, true)", (m, lease, "provider said [/b] \x1b[2J[bold]boom")
        )
    result = CliRunner().invoke(main, ["status"], env=env_of(settings))
    assert result.exit_code == 0, (result.output, result.exception)
    _no_escapes(result.output)
    assert "provider said [/b] [2J[bold]boom" in result.output


def test_safe_text_helper():
    from memoriesdb_runner.safety import safe_text

    assert safe_text("[/oops]") == "\\[/oops]"
    assert safe_text("a\x1b[31mb\x00c\x7fd\u009be\u202ef\nline\ttab") == "a[31mbcdef line tab"
    assert safe_text(None) == ""
    assert safe_text(3) == "3"


# --- ingest: bad lines, memory, re-runs -------------------------------------------------------


def _count(admin_conn, uid) -> int:
    return admin_conn.execute("SELECT count(*) AS n FROM memoriesdb.memories WHERE owner_id = %s", (uid,)).fetchone()["n"]


def test_ingest_reports_each_hostile_line_and_goes_on(settings, admin_conn, user, tmp_path):
    uid, key = user
    f = tmp_path / "hostile.jsonl"
    lines = [
        b'{"content": "good one"}',
        b'{"content": "nul \\u0000 inside"}',
        b'{"content": 42}',
        b'{"content": "bad utf-8 \xff\xfe"}',
        b'{"content": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"content": "good two", "metadata": {"k": "v"}}',
        b"not json",
        b'{"content": "good three"}',
    ]
    f.write_bytes(b"\n".join(lines) + b"\n")
    env = {**env_of(settings), "MEMORIESDB_API_KEY": key}
    result = CliRunner().invoke(main, ["ingest", str(f), "--batch", "2"], env=env)
    assert result.exit_code == 2, (result.output, result.exception)
    assert "Traceback" not in result.output
    for n, why in [(2, "NUL"), (3, "content must be a string"), (4, "not UTF-8"), (5, "nested"), (7, "invalid JSON")]:
        assert f"line {n}: " in result.output and why in result.output, (n, why, result.output)
    assert "3 stored, 0 already stored, 5 bad" in result.output
    assert [
        r["content"]
        for r in admin_conn.execute("SELECT content FROM memoriesdb.memories WHERE owner_id = %s ORDER BY content", (uid,))
    ] == ["good one", "good three", "good two"]


def test_ingest_plain_text_with_nul_and_bad_utf8(settings, admin_conn, user, tmp_path):
    uid, key = user
    f = tmp_path / "notes.txt"
    f.write_bytes(b"fine\nnul\x00here\nlatin-1 caf\xe9\nalso fine\n")
    result = CliRunner().invoke(main, ["ingest", str(f)], env={**env_of(settings), "MEMORIESDB_API_KEY": key})
    assert result.exit_code == 2, (result.output, result.exception)
    assert "line 2: " in result.output and "line 3: " in result.output
    assert _count(admin_conn, uid) == 2


def test_ingest_twice_stores_nothing_twice(settings, admin_conn, user, tmp_path):
    uid, key = user
    f = tmp_path / "notes.jsonl"
    f.write_text("".join(json.dumps({"content": f"note {i}", "metadata": {"i": i}}) + "\n" for i in range(25)))
    env = {**env_of(settings), "MEMORIESDB_API_KEY": key}
    first = CliRunner().invoke(main, ["ingest", str(f), "--batch", "7"], env=env)
    assert first.exit_code == 0, (first.output, first.exception)
    assert "25 stored, 0 already stored, 0 bad" in first.output
    second = CliRunner().invoke(main, ["ingest", str(f), "--batch", "7"], env=env)
    assert second.exit_code == 0, (second.output, second.exception)
    assert "0 stored, 25 already stored, 0 bad" in second.output
    assert _count(admin_conn, uid) == 25
    # the same text on another line is another memory (a file may repeat a line on purpose)
    f.write_text(f.read_text() + json.dumps({"content": "note 0", "metadata": {"i": 0}}) + "\n")
    third = CliRunner().invoke(main, ["ingest", str(f)], env=env)
    assert "1 stored, 25 already stored, 0 bad" in third.output
    assert _count(admin_conn, uid) == 26


def test_ingest_resumes_after_ctrl_c_without_duplicates(settings, admin_conn, user, tmp_path):
    uid, key = user
    n = 6000
    f = tmp_path / "big.txt"
    f.write_text("".join(f"memory number {i}\n" for i in range(n)))
    env = {
        **os.environ,
        **env_of(settings),
        "MEMORIESDB_API_KEY": key,
        "MEMORIESDB_PROJECT_DIR": str(PROJECT_DIR),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "memoriesdb_runner.cli", "ingest", str(f), "--batch", "50"],
        cwd=RUNNER_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while _count(admin_conn, uid) < 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    partial = _count(admin_conn, uid)
    assert 0 < partial < n, (partial, out)
    assert proc.returncode == 130 and f"interrupted: {partial} stored" in out.decode(), "the count is of committed lines"
    again = subprocess.run(
        [sys.executable, "-m", "memoriesdb_runner.cli", "ingest", str(f), "--batch", "500"],
        cwd=RUNNER_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{n - partial} stored, {partial} already stored, 0 bad" in again.stdout
    rows = admin_conn.execute(
        "SELECT content, count(*) AS c FROM memoriesdb.memories WHERE owner_id = %s GROUP BY content HAVING count(*) > 1", (uid,)
    ).fetchall()
    assert rows == [] and _count(admin_conn, uid) == n


def test_ctrl_c_during_a_batch_commit_waits_for_it_and_counts_it(database):
    """The interrupt that arrives while a batch's COMMIT is on the wire (CI once printed "200 stored"
    with 250 committed): the COMMIT finishes, its lines are counted, then the run stops. A COMMIT
    made slow on purpose (a deferred trigger sleeping 0.5 s) and a cancel 0.1 s into it."""

    async def scenario() -> tuple[IngestResult, int]:
        conn = await psycopg.AsyncConnection.connect(database, autocommit=False)
        async with conn:
            await conn.execute("CREATE TEMP TABLE batch (n int) ON COMMIT PRESERVE ROWS")
            await conn.execute(
                "CREATE FUNCTION pg_temp.slow_commit() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN PERFORM pg_sleep(0.5); RETURN NULL; END $$"
            )
            await conn.execute(
                "CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON batch DEFERRABLE INITIALLY DEFERRED "
                "FOR EACH ROW EXECUTE FUNCTION pg_temp.slow_commit()"
            )
            await conn.commit()
            await conn.execute("INSERT INTO batch VALUES (1), (2), (3)")
            result = IngestResult(stored=10)  # earlier batches
            step = asyncio.create_task(uninterrupted(_commit_and_count(conn, IngestResult(stored=3), result)))
            await asyncio.sleep(0.1)
            step.cancel()
            with pytest.raises(asyncio.CancelledError):
                await step
            rows = (await (await conn.execute("SELECT count(*) FROM batch")).fetchone())[0]
            await conn.rollback()
            return result, rows

    result, rows = asyncio.run(scenario())
    assert rows == 3, "the COMMIT in flight when Ctrl-C came finished"
    assert result.stored == 13, "and its lines are in the count printed on interrupt"


def test_ingest_key_is_per_owner(settings, admin_conn, user, make_user, tmp_path):
    """Alice's run does not make Bob's run of the same file a no-op: the key is (owner, line key)."""
    uid, key = user
    bob = make_user()
    bob_key = admin_conn.execute("SELECT memoriesdb.create_api_key(%s) AS k", (bob,)).fetchone()["k"]
    f = tmp_path / "shared.txt"
    f.write_text("one\ntwo\n")
    for k in (key, bob_key):
        r = CliRunner().invoke(main, ["ingest", str(f)], env={**env_of(settings), "MEMORIESDB_API_KEY": k})
        assert "2 stored, 0 already stored, 0 bad" in r.output, r.output
    assert _count(admin_conn, uid) == 2 and _count(admin_conn, bob) == 2


def test_two_runs_racing_on_one_key_store_one_memory(settings, admin_conn, user):
    """Two transactions remember_once() the same key at once: the second waits for the first, stores
    nothing (MDB28, its memory rolled back) and, asked again, returns the first one's memory."""
    import threading

    uid, key = user
    a = psycopg.connect(settings.app_dsn)
    b = psycopg.connect(settings.app_dsn)
    try:
        a.execute("SELECT memoriesdb.authenticate(%s)", (key,))
        [(first, created)] = a.execute("SELECT * FROM memoriesdb.remember_once('from a', '{}', 'race')").fetchall()
        assert created
        outcome = {}

        def other():
            try:
                b.execute("SELECT memoriesdb.authenticate(%s)", (key,))
                b.execute("SELECT * FROM memoriesdb.remember_once('from b', '{}', 'race')").fetchall()
            except psycopg.Error as exc:
                outcome["sqlstate"] = exc.diag.sqlstate
                b.rollback()

        t = threading.Thread(target=other)
        t.start()
        time.sleep(0.5)
        assert t.is_alive(), "b waits for a's key"
        a.commit()
        t.join(10)
        assert outcome == {"sqlstate": "MDB28"}
        b.execute("SELECT memoriesdb.authenticate(%s)", (key,))
        assert b.execute("SELECT * FROM memoriesdb.remember_once('from b', '{}', 'race')").fetchall() == [(first, False)]
        b.commit()
    finally:
        a.close()
        b.close()
    assert [r["content"] for r in admin_conn.execute("SELECT content FROM memoriesdb.memories WHERE owner_id = %s", (uid,))] == [
        "from a"
    ]


# --- API keys: never on the command line -----------------------------------------------------


def test_api_key_from_a_private_file_stdin_or_environment(settings, admin_conn, user, tmp_path):
    uid, key = user
    f = tmp_path / "notes.txt"
    f.write_text("from a key file\n")
    keyfile = tmp_path / "key"
    keyfile.write_text(key + "\n")
    keyfile.chmod(0o600)
    env = env_of(settings)
    by_file = CliRunner().invoke(main, ["ingest", str(f), "--api-key-file", str(keyfile), "--source", "a"], env=env)
    assert by_file.exit_code == 0, (by_file.output, by_file.exception)
    by_stdin = CliRunner().invoke(main, ["ingest", str(f), "--api-key-stdin", "--source", "b"], env=env, input=key + "\n")
    assert by_stdin.exit_code == 0, (by_stdin.output, by_stdin.exception)
    by_env = CliRunner().invoke(main, ["ingest", str(f), "--source", "c"], env={**env, "MEMORIESDB_API_KEY": key})
    assert by_env.exit_code == 0, (by_env.output, by_env.exception)
    assert _count(admin_conn, uid) == 3


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_api_key_file_readable_by_others_is_refused(settings, user, tmp_path, mode):
    _, key = user
    f = tmp_path / "notes.txt"
    f.write_text("x\n")
    keyfile = tmp_path / "key"
    keyfile.write_text(key)
    keyfile.chmod(mode)
    result = CliRunner().invoke(main, ["ingest", str(f), "--api-key-file", str(keyfile)], env=env_of(settings))
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit)
    assert "readable by other users" in result.output and "chmod 600" in result.output


def test_api_key_on_the_command_line_warns(settings, user, tmp_path):
    _, key = user
    f = tmp_path / "notes.txt"
    f.write_text("x\n")
    result = CliRunner().invoke(main, ["ingest", str(f), "--api-key", key], env=env_of(settings))
    assert result.exit_code == 0, (result.output, result.exception)
    assert "warning: --api-key is visible to every local user" in result.stderr
    assert key not in result.output


# --- .env: only an explicit file, only a private one ----------------------------------------


def test_dotenv_in_the_current_directory_is_ignored(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MEMORIESDB_ADMIN_DSN", raising=False)
    monkeypatch.delenv("MEMORIESDB_ENV_FILE", raising=False)
    (tmp_path / ".env").write_text("MEMORIESDB_ADMIN_DSN=postgresql://attacker@evil.example/stolen\n")
    (tmp_path / ".env").chmod(0o666)
    assert "evil.example" not in Settings().admin_dsn
    from memoriesdb_runner.settings import load_settings

    assert "evil.example" not in load_settings().admin_dsn


def test_explicit_env_file_is_loaded_when_private(tmp_path, monkeypatch):
    from memoriesdb_runner.settings import load_settings

    monkeypatch.delenv("MEMORIESDB_ADMIN_DSN", raising=False)
    env = tmp_path / "memoriesdb.env"
    env.write_text("MEMORIESDB_ADMIN_DSN=postgresql://postgres@db.internal/memoriesdb\n")
    env.chmod(0o600)
    assert load_settings(env).admin_dsn == "postgresql://postgres@db.internal/memoriesdb"
    monkeypatch.setenv("MEMORIESDB_ENV_FILE", str(env))
    assert load_settings().admin_dsn == "postgresql://postgres@db.internal/memoriesdb"
    env.chmod(0o644)  # readable is fine for a settings file (no secret in it here); writable is not
    assert load_settings(env).admin_dsn == "postgresql://postgres@db.internal/memoriesdb"


@pytest.mark.parametrize("mode", [0o666, 0o620, 0o602])
def test_writable_env_file_is_refused(settings, tmp_path, mode):
    env = tmp_path / "memoriesdb.env"
    env.write_text("MEMORIESDB_DSN=postgresql://attacker@evil.example/x\n")
    env.chmod(mode)
    for args, extra in ((["--env-file", str(env), "status"], {}), (["status"], {"MEMORIESDB_ENV_FILE": str(env)})):
        result = CliRunner().invoke(main, args, env={**env_of(settings), **extra})
        assert result.exit_code != 0 and isinstance(result.exception, SystemExit), result.output
        assert "writable by other users" in result.output and str(env) in result.output
        assert len(result.output.strip().splitlines()) == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_env_file_of_another_user_is_refused(settings, tmp_path):
    env = tmp_path / "memoriesdb.env"
    env.write_text("MEMORIESDB_LOG_LEVEL=DEBUG\n")
    env.chmod(0o600)
    os.chown(env, 65534, 65534)
    result = CliRunner().invoke(main, ["--env-file", str(env), "status"], env=env_of(settings))
    assert result.exit_code != 0 and "not owned by you" in result.output


# --- deploy: the DSN reaches sqitch whole; no password-less logins unless asked ---------------


FAKE_SQITCH = """#!/bin/sh
env > "$FAKE_SQITCH_RECORD.env"
printf '%s\\n' "$@" > "$FAKE_SQITCH_RECORD.args"
if [ -n "$FAKE_SQITCH_FAIL" ]; then
  echo "Deploying changes to mdb" ; echo 'psql: error: connection refused' >&2 ; echo 'Deploy failed' >&2 ; exit 2
fi
echo "Nothing to deploy (up-to-date)"
"""


@pytest.fixture
def fake_sqitch(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "sqitch").write_text(FAKE_SQITCH)
    (bindir / "sqitch").chmod(0o755)
    return bindir, tmp_path / "record"


def _deploy(args, admin_dsn, fake_sqitch, **extra):
    bindir, record = fake_sqitch
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "MEMORIESDB_"))}
    env.update(
        PATH=f"{bindir}:{env['PATH']}",
        FAKE_SQITCH_RECORD=str(record),
        MEMORIESDB_ADMIN_DSN=admin_dsn,
        MEMORIESDB_PROJECT_DIR=str(PROJECT_DIR),
        **extra,
    )
    return subprocess.run(
        [sys.executable, "-m", "memoriesdb_runner.cli", "deploy", *args], cwd=RUNNER_DIR, env=env, capture_output=True, text=True
    )


def _recorded_env(record: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in Path(f"{record}.env").read_text().splitlines() if "=" in line)


@pytest.fixture
def deploy_db():
    name = "mdb_in_deploytest"
    with psycopg.connect(f"postgresql://postgres@{HOST}:{PORT}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    yield name
    with psycopg.connect(f"postgresql://postgres@{HOST}:{PORT}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_deploy_passes_password_and_sslmode_to_sqitch(fake_sqitch, deploy_db):
    dsn = f"postgresql://postgres:s3cr%40t@{HOST}:{PORT}/{deploy_db}?sslmode=prefer&connect_timeout=7&application_name=deployer"
    done = _deploy([], dsn, fake_sqitch)
    assert done.returncode == 0, done.stdout + done.stderr
    env = _recorded_env(fake_sqitch[1])
    assert env["PGPASSWORD"] == "s3cr@t"
    assert env["PGSSLMODE"] == "prefer"
    assert env["PGHOST"] == HOST and env["PGPORT"] == PORT and env["PGUSER"] == "postgres"
    assert env["PGDATABASE"] == deploy_db and env["PGCONNECT_TIMEOUT"] == "7" and env["PGAPPNAME"] == "deployer"
    args = Path(f"{fake_sqitch[1]}.args").read_text()
    assert "s3cr" not in args, "the password never appears on sqitch's command line"


def test_deploy_keyword_dsn_and_socket_directory(fake_sqitch, deploy_db):
    dsn = f"host={HOST} port={PORT} dbname={deploy_db} user=postgres password='a b' sslmode=disable"
    done = _deploy([], dsn, fake_sqitch)
    assert done.returncode == 0, done.stdout + done.stderr
    env = _recorded_env(fake_sqitch[1])
    assert env["PGPASSWORD"] == "a b" and env["PGSSLMODE"] == "disable"


def test_deploy_creates_no_logins_unless_asked(fake_sqitch, deploy_db, admin_conn):
    done = _deploy([], f"postgresql://postgres@{HOST}:{PORT}/{deploy_db}", fake_sqitch)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "login" not in done.stdout.lower() or "--dev-logins" in done.stdout
    settings_rows = admin_conn.execute(
        "SELECT count(*) AS n FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = %s",
        (deploy_db,),
    ).fetchone()["n"]
    assert settings_rows == 0, "no login was configured in the new database"
    # asked for, on a database the fake sqitch did not deploy: one clear line, no traceback
    asked = _deploy(["--dev-logins"], f"postgresql://postgres@{HOST}:{PORT}/{deploy_db}", fake_sqitch)
    assert asked.returncode != 0
    assert "Traceback" not in asked.stderr and asked.stderr.startswith("error: ")


def test_deploy_errors_are_one_line(fake_sqitch, deploy_db):
    failed = _deploy([], f"postgresql://postgres@{HOST}:{PORT}/{deploy_db}", fake_sqitch, FAKE_SQITCH_FAIL="1")
    assert failed.returncode != 0
    assert "Traceback" not in failed.stderr
    err = [line for line in failed.stderr.splitlines() if line.startswith("error: ")]
    assert err and "sqitch deploy failed" in err[0] and "Deploy failed" in err[0], failed.stderr
    unreachable = _deploy([], "postgresql://postgres@127.0.0.1:1/x?connect_timeout=2", fake_sqitch)
    assert unreachable.returncode != 0 and "Traceback" not in unreachable.stderr
    assert unreachable.stderr.strip().count("\n") == 0 and unreachable.stderr.startswith("error: "), unreachable.stderr


def test_bad_configuration_is_one_line(settings):
    result = subprocess.run(
        [sys.executable, "-m", "memoriesdb_runner.cli", "status"],
        cwd=RUNNER_DIR,
        env={**os.environ, **env_of(settings), "MEMORIESDB_PROVIDER": "bogus"},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and "provider" in result.stderr and result.stderr.strip().count("\n") == 0


def test_unknown_dsn_database_is_one_line(settings):
    env = {**os.environ, **env_of(settings), "MEMORIESDB_DSN": f"postgresql://memoriesdb_runner@{HOST}:{PORT}/{DB}_none"}
    result = subprocess.run(
        [sys.executable, "-m", "memoriesdb_runner.cli", "status"], cwd=RUNNER_DIR, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr and result.stderr.startswith("error: "), result.stderr
