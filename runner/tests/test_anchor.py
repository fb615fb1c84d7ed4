"""Checkpoints kept outside the database: signing, the Merkle root, the stores, `memoriesdb anchor`,
`verify-audit` and the anchor in `worker all`, against a real PostgreSQL (and a local S3 server)."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from psycopg.types.json import Jsonb
from structlog.testing import capture_logs

from memoriesdb_runner import anchor as anc
from memoriesdb_runner import metrics
from memoriesdb_runner.checkpoint_store import DirectoryStore, S3Store, new_name, open_store
from memoriesdb_runner.errors import ConfigurationError
from memoriesdb_runner.service import run_workers

from .conftest import DB, HOST, PORT, remember

AUDITOR_DSN = f"postgresql://memoriesdb_inspector@{HOST}:{PORT}/{DB}"


def h(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def synthetic(n: int = 3, **fields) -> dict:
    """A well-formed checkpoint not taken from a database (its root computed by merkle_root)."""
    chains = sorted(
        ({"chain": str(uuid.uuid4()), "seq": i + 1, "hash": h(f"seal {i}").hex()} for i in range(n)), key=lambda c: c["chain"]
    )
    cp = {
        "format": anc.CHECKPOINT_FORMAT,
        "ledger": str(uuid.uuid4()),
        "database": "nowhere",
        "taken_at": "2026-11-30T06:30:00.123456Z",
        "audit_rows": 10 * n,
        "chains": chains,
        **fields,
    }
    cp["root"] = anc.merkle_root(chains)
    return cp


@pytest.fixture
def key_path(tmp_path) -> Path:
    path = tmp_path / "keys" / "anchor.key"
    path.parent.mkdir()
    anc.generate_key(path)
    return path


@pytest.fixture
def keys(key_path) -> dict:
    pub = anc.load_public_key(anc.public_key_path(key_path))
    return {anc.key_id(pub): pub}


# --- keys -------------------------------------------------------------------------------------


def test_keygen_writes_a_private_key_only_its_owner_reads_and_refuses_to_overwrite(tmp_path):
    path = tmp_path / "anchor.key"
    pub_path, kid = anc.generate_key(path)
    assert pub_path == tmp_path / "anchor.key.pub"
    assert path.stat().st_mode & 0o777 == 0o600
    assert b"PRIVATE KEY" in path.read_bytes() and b"PUBLIC KEY" in pub_path.read_bytes()
    private = anc.load_private_key(path)
    raw = private.public_key().public_bytes_raw()
    assert kid == hashlib.sha256(raw).hexdigest() == anc.key_id(anc.load_public_key(pub_path))
    before = path.read_bytes()
    with pytest.raises(ConfigurationError, match="refusing to overwrite"):
        anc.generate_key(path)
    assert path.read_bytes() == before, "the old key is untouched"
    other = tmp_path / "other.key"
    (tmp_path / "other.key.pub").write_text("someone's public key")
    with pytest.raises(ConfigurationError, match="refusing to overwrite"):
        anc.generate_key(other)
    assert not other.exists(), "no private key without its public key"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620])
def test_a_key_file_other_users_may_read_or_write_is_refused(key_path, mode):
    key_path.chmod(mode)
    with pytest.raises(ConfigurationError, match="other users"):
        anc.load_private_key(key_path)


def test_anchor_keygen_command(tmp_path):
    path = tmp_path / "k"
    out = subprocess.run(
        [sys.executable, "-m", "memoriesdb_runner.cli", "anchor-keygen", str(path)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert anc.key_id(anc.load_private_key(path).public_key()) in out.stdout
    again = subprocess.run(
        [sys.executable, "-m", "memoriesdb_runner.cli", "anchor-keygen", str(path)], capture_output=True, text=True
    )
    assert again.returncode == 1 and "refusing to overwrite" in again.stderr


# --- signatures and roots ---------------------------------------------------------------------


def test_sign_and_verify_roundtrip(key_path, keys):
    cp = synthetic(5)
    record = anc.sign(cp, anc.load_private_key(key_path))
    assert record["key_id"] in keys and len(base64.b64decode(record["signature"])) == 64
    assert anc.check_record(anc.record_bytes(record), keys) == cp
    # the signature is over the canonical bytes, whatever the stored file's layout
    compact = json.dumps(record, separators=(",", ":")).encode()
    assert anc.check_record(compact, keys) == cp


def test_a_tampered_signature_is_detected(key_path, keys):
    record = anc.sign(synthetic(), anc.load_private_key(key_path))
    sig = bytearray(base64.b64decode(record["signature"]))
    sig[7] ^= 0x01
    record["signature"] = base64.b64encode(bytes(sig)).decode()
    with pytest.raises(anc.BadRecord) as exc:
        anc.check_record(anc.record_bytes(record), keys)
    assert exc.value.kind == "bad signature"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda cp: cp.update(audit_rows=cp["audit_rows"] - 1),
        lambda cp: cp.update(taken_at="2026-11-30T06:29:00.000000Z"),
        lambda cp: cp["chains"][0].update(seq=cp["chains"][0]["seq"] + 1),
        lambda cp: cp["chains"].pop(),
    ],
    ids=["audit_rows", "taken_at", "seq", "chain dropped"],
)
def test_tampered_checkpoint_content_is_detected(key_path, keys, tamper):
    record = anc.sign(synthetic(4), anc.load_private_key(key_path))
    tamper(record["checkpoint"])
    record["checkpoint"]["root"] = anc.merkle_root(record["checkpoint"]["chains"])  # even with a consistent root
    with pytest.raises(anc.BadRecord) as exc:
        anc.check_record(anc.record_bytes(record), keys)
    assert exc.value.kind == "bad signature"


def test_a_checkpoint_resigned_with_another_key_is_not_believed(tmp_path, keys):
    forger = tmp_path / "forger.key"
    anc.generate_key(forger)
    record = anc.sign(synthetic(), anc.load_private_key(forger))
    with pytest.raises(anc.BadRecord) as exc:
        anc.check_record(anc.record_bytes(record), keys)
    assert exc.value.kind == "unknown key"
    record["key_id"] = next(iter(keys))  # claims the right key: the signature does not match it
    with pytest.raises(anc.BadRecord) as exc:
        anc.check_record(anc.record_bytes(record), keys)
    assert exc.value.kind == "bad signature"


@pytest.mark.parametrize("data", [b"", b"{", b"[]", b'{"format": "x"}', json.dumps({"checkpoint": {}, "key_id": "a"}).encode()])
def test_a_file_that_is_no_signed_checkpoint_is_unreadable(keys, data):
    with pytest.raises(anc.BadRecord) as exc:
        anc.check_record(data, keys)
    assert exc.value.kind == "unreadable"


def test_a_later_checkpoint_that_undoes_an_earlier_one_is_named():
    before = synthetic(3)
    grown = json.loads(json.dumps(before))
    grown["chains"][0].update(seq=5, hash="ab" * 32)
    grown["audit_rows"] += 7
    assert anc.went_back(before, grown) == [] and anc.went_back(before, before) == []
    (a, sa), (b, sb), (c, sc) = ((x["chain"], x["seq"]) for x in before["chains"])
    cut = json.loads(json.dumps(before))
    cut["chains"][1]["seq"] = 0
    cut["chains"][2]["hash"] = "cd" * 32
    del cut["chains"][0]
    cut["audit_rows"] -= 1
    assert anc.went_back(before, cut) == [
        f"chain {a} is gone (seal {sa} in the checkpoint before)",
        f"chain {b} is back at seal 0 (seal {sb} in the checkpoint before)",
        f"chain {c}: another seal {sc} than in the checkpoint before (rewritten or forked)",
        f"{before['audit_rows'] - 1} audit rows, {before['audit_rows']} in the checkpoint before",
    ]


def test_merkle_root_follows_the_contract():
    def leaf(c, s, x):
        return h(f"memoriesdb-leaf:{c}:{s}:{x}")

    def node(a, b):
        return hashlib.sha256(a + b).digest()

    chains = [{"chain": f"c{i}", "seq": i + 1, "hash": f"{i:064x}"} for i in range(5)]
    leaves = [leaf(c["chain"], c["seq"], c["hash"]) for c in chains]
    assert anc.merkle_root([]) == h("memoriesdb-empty").hex()
    assert anc.merkle_root(chains[:1]) == leaves[0].hex()
    assert anc.merkle_root(chains[:2]) == node(leaves[0], leaves[1]).hex()
    assert anc.merkle_root(chains[:3]) == node(node(leaves[0], leaves[1]), leaves[2]).hex(), "odd last node carried up"
    four = node(node(leaves[0], leaves[1]), node(leaves[2], leaves[3]))
    assert anc.merkle_root(chains[:4]) == four.hex()
    assert anc.merkle_root(chains) == node(four, leaves[4]).hex(), "carried up twice"
    assert anc.merkle_root(chains[::-1]) != anc.merkle_root(chains), "the order counts"


def test_a_signed_checkpoint_whose_root_is_not_its_chains_root_is_detected(key_path, keys):
    cp = synthetic(3)
    cp["root"] = anc.merkle_root(cp["chains"][:2])  # signed as it is: the signer was fed a wrong root
    with pytest.raises(anc.BadRecord) as exc:
        anc.check_record(anc.record_bytes(anc.sign(cp, anc.load_private_key(key_path))), keys)
    assert exc.value.kind == "root mismatch"


# --- stores -----------------------------------------------------------------------------------


def test_names_sort_by_time():
    import datetime as dt

    t = dt.datetime(2026, 11, 30, 6, 30, tzinfo=dt.UTC)
    names = [new_name(t + dt.timedelta(microseconds=i)) for i in (1, 10, 100, 10**6, 10**9)]
    assert sorted(names) == names and names[0].startswith("20261130T063000.000001Z-")


def test_directory_store_never_overwrites(tmp_path):
    store = DirectoryStore(tmp_path / "cps")
    first = store.put("20261130T063000.000000Z-00000000.json", b"first")
    second = store.put("20261130T063000.000000Z-00000000.json", b"second")
    assert first != second
    assert Path(first).read_bytes() == b"first" and Path(second).read_bytes() == b"second"
    assert store.names() == sorted(Path(p).name for p in (first, second))
    assert not [p for p in (tmp_path / "cps").iterdir() if p.name.startswith(".")], "no temporary file left"
    with pytest.raises(ValueError):
        store.put("../escape.json", b"x")


def _put_many(path: str, n: int) -> list[str]:
    store = DirectoryStore(path)
    return [store.put("20261130T063000.000000Z-00000000.json", f"{os.getpid()} {i}".encode()) for i in range(n)]


def test_directory_store_survives_concurrent_writers_of_one_name(tmp_path):
    """8 processes put 25 files each under the same name: 200 files, each with what its writer wrote."""
    with concurrent.futures.ProcessPoolExecutor(8) as pool:
        results = list(pool.map(_put_many, [str(tmp_path)] * 8, [25] * 8))
    written = [p for r in results for p in r]
    assert len(set(written)) == 200
    contents = {Path(p).read_bytes() for p in written}
    assert len(contents) == 200, "no file was replaced by another writer's"
    assert len(DirectoryStore(tmp_path).names()) == 200


@pytest.fixture(scope="module")
def s3_endpoint():
    """A local S3-compatible server (moto's, over HTTP on 127.0.0.1) and a bucket."""
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ACCESS_KEY_ID": "anchor-test", "AWS_SECRET_ACCESS_KEY": "anchor-test", "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    url = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=url).create_bucket(Bucket="memoriesdb-checkpoints")
    yield url
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_s3_store_appends_and_never_overwrites(s3_endpoint):
    store = open_store("s3://memoriesdb-checkpoints/prod/ledger-a", s3_endpoint_url=s3_endpoint)
    assert isinstance(store, S3Store)
    first = store.put("20261130T063000.000000Z-00000000.json", b"first")
    second = store.put("20261130T063000.000000Z-00000000.json", b"second")
    assert first == "s3://memoriesdb-checkpoints/prod/ledger-a/20261130T063000.000000Z-00000000.json" != second
    names = store.names()
    assert len(names) == 2 and {store.get(n) for n in names} == {b"first", b"second"}
    other = open_store("s3://memoriesdb-checkpoints/prod/ledger-b", s3_endpoint_url=s3_endpoint)
    assert other.names() == [], "a prefix is a store of its own"


def test_s3_store_concurrent_writers_of_one_name(s3_endpoint):
    store = open_store("s3://memoriesdb-checkpoints/concurrent", s3_endpoint_url=s3_endpoint)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        written = list(pool.map(lambda i: store.put("20261130T063000.000000Z-00000000.json", str(i).encode()), range(40)))
    assert len(set(written)) == 40
    assert sorted(store.get(n) for n in store.names()) == sorted(str(i).encode() for i in range(40))


# --- against the database ---------------------------------------------------------------------


def cli_env(settings, key_path: Path, store: str | Path, **extra) -> dict:
    return {
        **os.environ,
        "MEMORIESDB_DSN": settings.dsn,
        "MEMORIESDB_AUDITOR_DSN": AUDITOR_DSN,
        "MEMORIESDB_ANCHOR_KEY_FILE": str(key_path),
        "MEMORIESDB_ANCHOR_STORE": str(store),
        "COLUMNS": "250",
        **extra,
    }


def cli(env: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "memoriesdb_runner.cli", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def anchor_settings(settings, key_path, store):
    return settings.model_copy(update={"anchor_key_file": key_path, "anchor_store": str(store), "auditor_dsn": AUDITOR_DSN})


def test_the_ledgers_checkpoint_has_the_root_the_runner_computes(settings, admin_conn, user, make_user, key_path, tmp_path):
    """The root the database computes over its chains is the one merkle_root recomputes (a 2nd implementation)."""
    uid, _ = user
    remember(admin_conn, uid, "first")
    remember(admin_conn, make_user(), "second")
    where, cp = asyncio.run(anc.anchor_once(anchor_settings(settings, key_path, tmp_path / "cps")))
    assert cp["format"] == anc.CHECKPOINT_FORMAT and cp["database"] == DB
    assert len(cp["chains"]) >= 3, "the two owners' chains and the common one (users)"
    assert str(uid) in {c["chain"] for c in cp["chains"]}
    assert anc.merkle_root(cp["chains"]) == cp["root"]
    assert Path(where).parent == tmp_path / "cps"


def test_anchor_then_verify_audit(settings, admin_conn, user, key_path, tmp_path):
    uid, _ = user
    store = tmp_path / "cps"
    env = cli_env(settings, key_path, store)
    for i in range(3):
        remember(admin_conn, uid, f"anchored {i}")
        done = cli(env, "anchor")
        assert done.returncode == 0, done.stderr
        assert str(store) in done.stdout and "root" in done.stdout
    files = sorted(store.iterdir())
    assert len(files) == 3
    record = json.loads(files[-1].read_text())
    assert set(record) == {"format", "checkpoint", "signature", "key_id"} and record["key_id"] in record_key_ids(key_path)
    pub = str(anc.public_key_path(key_path))
    ok = cli(env, "verify-audit", "--checkpoints", str(store), "--public-key", pub)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "all 3 checkpoints verified" in ok.stdout
    # without --public-key: MEMORIESDB_ANCHOR_KEY_FILE's public key; without --checkpoints: MEMORIESDB_ANCHOR_STORE
    assert cli(env, "verify-audit").returncode == 0


def entry(report: str, name: str) -> str:
    """The report's entry for one checkpoint file: its line and the indented lines below it, joined."""
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if name in line)
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith(" ")), len(lines))
    return " ".join(" ".join(line.split()) for line in lines[start:end])


def record_key_ids(key_path):
    return {anc.key_id(anc.load_private_key(key_path).public_key())}


def test_verify_audit_names_a_tampered_file_and_exits_3(settings, admin_conn, user, key_path, tmp_path):
    uid, _ = user
    store = tmp_path / "cps"
    env = cli_env(settings, key_path, store)
    for i in range(3):
        remember(admin_conn, uid, f"to tamper {i}")
        assert cli(env, "anchor").returncode == 0
    files = sorted(store.iterdir())
    record = json.loads(files[1].read_text())
    record["checkpoint"]["audit_rows"] += 1
    files[1].write_text(json.dumps(record))
    out = cli(env, "verify-audit")
    assert out.returncode == 3, out.stdout + out.stderr
    lines = {f.name: entry(out.stdout, f.name) for f in files}
    assert lines[files[1].name].startswith("bad signature ") and "does not match" in lines[files[1].name]
    assert lines[files[0].name].startswith("ok ") and lines[files[2].name].startswith("ok "), "the others still pass"
    assert "1 of 3 checkpoints failed" in out.stdout


def test_verify_audit_errors(settings, key_path, tmp_path):
    """Could not verify: exit 1, one line on stderr."""
    env = cli_env(settings, key_path, tmp_path / "missing")
    out = cli(env, "verify-audit")
    assert out.returncode == 1 and "does not exist" in out.stderr
    (tmp_path / "empty").mkdir()
    out = cli(env, "verify-audit", "--checkpoints", str(tmp_path / "empty"))
    assert out.returncode == 1 and "no checkpoints" in out.stderr
    env.pop("MEMORIESDB_ANCHOR_KEY_FILE")
    out = cli(env, "verify-audit", "--checkpoints", str(tmp_path / "empty"))
    assert out.returncode == 1 and "no public key" in out.stderr
    key_path.chmod(0o644)
    out = cli(cli_env(settings, key_path, tmp_path / "cps"), "anchor")
    assert out.returncode == 1 and "readable by other users" in out.stderr and not (tmp_path / "cps").exists()


def test_concurrent_anchors_all_land_and_verify(settings, admin_conn, user, key_path, tmp_path):
    uid, _ = user
    remember(admin_conn, uid, "before the concurrent anchors")
    store = tmp_path / "cps"
    env = cli_env(settings, key_path, store)
    procs = [
        subprocess.Popen([sys.executable, "-m", "memoriesdb_runner.cli", "anchor"], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert len(list(store.iterdir())) == 6
    out = cli(env, "verify-audit")
    assert out.returncode == 0 and "all 6 checkpoints verified" in out.stdout, out.stdout + out.stderr


@contextlib.contextmanager
def tail_cut(admin_conn, owner):
    """As a superuser with the triggers off: the newest seal of owner's chain and its audit rows
    deleted (what verify_audit_chain() alone cannot see); put back as they were on leaving. Yields
    the deleted seal."""
    with admin_conn.transaction():
        admin_conn.execute("SET LOCAL session_replication_role = replica")
        seal = admin_conn.execute(
            "SELECT * FROM memoriesdb.audit_seals WHERE chain = %s ORDER BY chain_seq DESC LIMIT 1", (owner,)
        ).fetchone()
        admin_conn.execute(
            "CREATE TEMP TABLE saved_seal ON COMMIT PRESERVE ROWS AS SELECT * FROM memoriesdb.audit_seals WHERE seq = %s",
            (seal["seq"],),
        )
        admin_conn.execute(
            "CREATE TEMP TABLE saved_rows ON COMMIT PRESERVE ROWS AS SELECT * FROM memoriesdb.audit_log"
            " WHERE id BETWEEN %s AND %s AND chain = %s AND txid = %s",
            (seal["first_id"], seal["last_id"], owner, seal["txid"]),
        )
        admin_conn.execute("DELETE FROM memoriesdb.audit_log WHERE id IN (SELECT id FROM saved_rows)")
        admin_conn.execute("DELETE FROM memoriesdb.audit_seals WHERE seq = %s", (seal["seq"],))
    try:
        yield seal
    finally:
        with admin_conn.transaction():
            admin_conn.execute("SET LOCAL session_replication_role = replica")
            admin_conn.execute("INSERT INTO memoriesdb.audit_log OVERRIDING SYSTEM VALUE SELECT * FROM saved_rows")
            admin_conn.execute("INSERT INTO memoriesdb.audit_seals OVERRIDING SYSTEM VALUE SELECT * FROM saved_seal")
            admin_conn.execute("DROP TABLE saved_rows, saved_seal")


def test_verify_audit_reports_what_the_database_names(settings, admin_conn, make_user, key_path, tmp_path):
    """A superuser cuts the tail of one owner's chain after a checkpoint: verify-audit exits 3 and
    shows the database's finding for that checkpoint; put back, it passes again."""
    owner = make_user()
    remember(admin_conn, owner, "kept")
    remember(admin_conn, owner, "to be deleted by the superuser")
    store = tmp_path / "cps"
    env = cli_env(settings, key_path, store)
    assert cli(env, "anchor").returncode == 0
    with tail_cut(admin_conn, owner) as seal:
        out = cli(env, "verify-audit")
        assert out.returncode == 3, out.stdout + out.stderr
        assert "log differs" in out.stdout and "1 of 1 checkpoints failed" in out.stdout
        assert f"chain {owner}: ends at seal {seal['chain_seq'] - 1}" in out.stdout and "the tail was removed" in out.stdout
        # a checkpoint taken after the cut verifies against the cut log, but not against the one before
        after = tmp_path / "after"
        shutil.copytree(store, after)
        assert cli({**env, "MEMORIESDB_ANCHOR_STORE": str(after)}, "anchor").returncode == 0
        out = cli({**env, "MEMORIESDB_ANCHOR_STORE": str(after)}, "verify-audit")
        assert out.returncode == 3 and "2 of 2 checkpoints failed" in out.stdout, out.stdout + out.stderr
        assert "went back" in out.stdout
        assert (
            f"chain {owner} is back at seal {seal['chain_seq'] - 1} (seal {seal['chain_seq']} in the checkpoint before)"
            in out.stdout
        )
    out = cli(env, "verify-audit")
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_restarted_anchor_compares_with_the_newest_checkpoint_in_its_store(settings, admin_conn, make_user, key_path, tmp_path):
    """The cut happens while no anchor runs: the next one, started afresh, compares its first
    checkpoint with the newest one stored under its key (a file signed by another key is not believed)."""
    owner = make_user()
    remember(admin_conn, owner, "one")
    remember(admin_conn, owner, "two")
    s = anchor_settings(settings, key_path, tmp_path / "cps")
    assert asyncio.run(anc.run_anchor_loop(s, asyncio.Event(), until_empty=True)) == 1
    with tail_cut(admin_conn, owner) as seal:
        with capture_logs() as logs:
            asyncio.run(anc.run_anchor_loop(s, asyncio.Event(), until_empty=True))
    alarms = [e for e in logs if e["event"] == "the audit history went back since the last checkpoint"]
    assert len(alarms) == 1 and f"chain {owner} is back at seal {seal['chain_seq'] - 1}" in " ".join(alarms[0]["problems"])
    # the newest file is a forger's (another key, 10**9 audit rows): passed over, the one before it is compared with
    forger = tmp_path / "forger.key"
    anc.generate_key(forger)
    newest = anc.Anchor(s).newest_stored()
    forged = synthetic(0, ledger=newest["ledger"], audit_rows=10**9)
    DirectoryStore(tmp_path / "cps").put(new_name(), anc.record_bytes(anc.sign(forged, anc.load_private_key(forger))))
    assert anc.Anchor(s).newest_stored() == newest
    with capture_logs() as logs:
        asyncio.run(anc.run_anchor_loop(s, asyncio.Event(), until_empty=True))
    assert not [e for e in logs if e["event"] == "the audit history went back since the last checkpoint"]


def test_verify_audit_checks_the_log_in_itself_once(settings, admin_conn, make_user, key_path, tmp_path):
    """An edited audit row (the chains' heads untouched): every checkpoint still holds, the log does
    not verify; exit 3 and the row named. Put back, all pass."""
    owner = make_user()
    remember(admin_conn, owner, "edited later")
    row = admin_conn.execute(
        "SELECT id, application_name FROM memoriesdb.audit_log WHERE chain = %s ORDER BY id LIMIT 1", (owner,)
    ).fetchone()
    remember(admin_conn, owner, "after it")
    store = tmp_path / "cps"
    env = cli_env(settings, key_path, store)
    assert cli(env, "anchor").returncode == 0 and cli(env, "anchor").returncode == 0

    def edit(value):
        with admin_conn.transaction():
            admin_conn.execute("SET LOCAL session_replication_role = replica")
            admin_conn.execute("UPDATE memoriesdb.audit_log SET application_name = %s WHERE id = %s", (value, row["id"]))

    edit("rewritten by the superuser")
    try:
        out = cli(env, "verify-audit")
    finally:
        edit(row["application_name"])
    assert out.returncode == 3, out.stdout + out.stderr
    log_entry = entry(out.stdout, "the audit log itself")
    assert log_entry.startswith("log differs") and f"audit row {row['id']}: contents do not match its hash" in log_entry
    assert "the audit log itself does not verify" in out.stdout and "checkpoints failed" not in out.stdout
    assert all(entry(out.stdout, f.name).startswith("ok ") for f in store.iterdir())
    again = cli(env, "verify-audit")
    assert again.returncode == 0 and "all 2 checkpoints verified" in again.stdout, again.stdout + again.stderr


def test_the_anchor_loop_raises_the_alarm_when_the_history_goes_back(settings, admin_conn, make_user, key_path, tmp_path):
    """The worker's anchor compares each checkpoint with the one it stored before: a cut between
    two intervals is logged as an error and counted (memoriesdb_anchors_total{outcome="went_back"})."""
    owner = make_user()
    remember(admin_conn, owner, "one")
    remember(admin_conn, owner, "two")
    s = anchor_settings(settings, key_path, tmp_path / "cps").model_copy(update={"anchor_interval_seconds": 0.5})
    went_back = metrics.ANCHORS.labels("went_back")

    async def scenario():
        stop = asyncio.Event()
        loop = asyncio.create_task(anc.run_anchor_loop(s, stop))
        while not (tmp_path / "cps").exists() or not list((tmp_path / "cps").iterdir()):
            await asyncio.sleep(0.05)
        before = went_back._value.get()
        with tail_cut(admin_conn, owner):
            n = len(list((tmp_path / "cps").iterdir()))
            while len(list((tmp_path / "cps").iterdir())) < n + 2:
                await asyncio.sleep(0.05)
            counted = went_back._value.get() - before
        stop.set()
        await loop
        return counted

    with capture_logs() as logs:
        counted = asyncio.run(scenario())
    assert counted >= 1
    alarms = [e for e in logs if e["event"] == "the audit history went back since the last checkpoint"]
    assert alarms and alarms[0]["log_level"] == "error"
    assert any(f"chain {owner} is back at seal" in p for p in alarms[0]["problems"])


def test_worker_all_anchors_every_interval_and_stops_on_sigterm(settings, admin_conn, user, key_path, tmp_path):
    uid, _ = user
    remember(admin_conn, uid, "embedded and anchored")
    store = tmp_path / "cps"
    env = cli_env(
        settings,
        key_path,
        store,
        MEMORIESDB_LISTEN_DSN=settings.listen,
        MEMORIESDB_PROVIDER="ollama",
        MEMORIESDB_OLLAMA_URL=settings.ollama_url,
        MEMORIESDB_POLL_SECONDS="0.2",
        MEMORIESDB_ANCHOR_INTERVAL_SECONDS="1",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "memoriesdb_runner.cli", "worker", "all"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(list(store.glob("*.json")) if store.exists() else []) < 3:
            time.sleep(0.2)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
        stop_s = time.monotonic() - t0
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert stop_s < 5, f"stopped in {stop_s:.1f} s"
    n = len(list(store.glob("*.json")))
    assert n >= 3, out
    assert "checkpoint anchored" in out
    verified = cli(env, "verify-audit")
    assert verified.returncode == 0 and f"all {n} checkpoints verified" in verified.stdout, verified.stdout + verified.stderr


def test_worker_all_without_a_key_does_not_anchor(settings, tmp_path):
    s = settings.model_copy(update={"anchor_store": str(tmp_path / "cps"), "anchor_key_file": None})
    asyncio.run(run_workers(s, {"embed", "vindex", "anchor"}, until_empty=True))
    assert not (tmp_path / "cps").exists()


def test_worker_all_until_empty_anchors_once(settings, key_path, tmp_path):
    asyncio.run(
        run_workers(anchor_settings(settings, key_path, tmp_path / "cps"), {"embed", "vindex", "anchor"}, until_empty=True)
    )
    assert len(list((tmp_path / "cps").iterdir())) == 1


def test_worker_refuses_to_start_with_an_unsafe_key_or_no_store(settings, key_path, tmp_path):
    no_store = anchor_settings(settings, key_path, "").model_copy(update={"anchor_store": None})
    with pytest.raises(ConfigurationError, match="MEMORIESDB_ANCHOR_STORE"):
        asyncio.run(run_workers(no_store, {"embed", "vindex", "anchor"}, until_empty=True))
    key_path.chmod(0o640)
    with pytest.raises(ConfigurationError, match="other users"):
        asyncio.run(run_workers(anchor_settings(settings, key_path, tmp_path / "cps"), {"embed", "anchor"}, until_empty=True))


def test_verify_audit_shows_what_the_database_says_of_a_validly_signed_checkpoint(settings, admin_conn, user, key_path, tmp_path):
    """Signed with the right key and a consistent root, but of another ledger, or no checkpoint the
    ledger accepts (MDB25): the database's words, for that checkpoint only."""
    uid, _ = user
    remember(admin_conn, uid, "checked by the database")
    store = tmp_path / "cps"
    env = cli_env(settings, key_path, store)
    where, cp = asyncio.run(anc.anchor_once(anchor_settings(settings, key_path, store)))
    key = anc.load_private_key(key_path)
    other = {**cp, "ledger": str(uuid.uuid4())}
    odd = {**cp, "chains": [*cp["chains"], {"chain": "not-a-chain", "seq": 1, "hash": "0" * 64}]}
    odd["root"] = anc.merkle_root(odd["chains"])
    names = {}
    for label, c in (("other", other), ("odd", odd)):
        names[label] = Path(DirectoryStore(store).put(new_name(), anc.record_bytes(anc.sign(c, key)))).name
    out = cli(env, "verify-audit")
    assert out.returncode == 3, out.stdout + out.stderr
    line = {label: entry(out.stdout, n) for label, n in names.items()}
    assert "log differs" in line["other"] and f"the checkpoint is of another ledger ({other['ledger']}" in line["other"]
    assert "refused" in line["odd"] and "not an audit checkpoint [MDB25]" in line["odd"]
    assert entry(out.stdout, Path(where).name).startswith("ok ")
    assert "2 of 3 checkpoints failed" in out.stdout


def test_anchor_to_s3_and_verify_from_it(settings, admin_conn, user, key_path, s3_endpoint):
    """The whole round over the S3 store: anchor (worker's settings) and verify-audit (a subprocess)."""
    uid, _ = user
    location = f"s3://memoriesdb-checkpoints/{uuid.uuid4()}"
    s = anchor_settings(settings, key_path, location).model_copy(update={"anchor_s3_endpoint_url": s3_endpoint})
    for i in range(2):
        remember(admin_conn, uid, f"anchored in a bucket {i}")
        where, _ = asyncio.run(anc.anchor_once(s))
        assert where.startswith(location + "/")
    env = cli_env(settings, key_path, location, MEMORIESDB_ANCHOR_S3_ENDPOINT_URL=s3_endpoint)
    out = cli(env, "verify-audit")
    assert out.returncode == 0 and "all 2 checkpoints verified" in out.stdout, out.stdout + out.stderr
    assert cli(env, "anchor").returncode == 0
    assert len(open_store(location, s3_endpoint_url=s3_endpoint).names()) == 3


@contextlib.contextmanager
def verification_replaced(admin_conn):
    """As a superuser: the ledger's verifying functions replaced by ones that find nothing (red team,
    31-redteam-chains.sql attack 2); the originals put back on leaving."""
    names = ["memoriesdb_internal.audit_checkpoint_findings", "memoriesdb_internal.audit_findings"]
    originals = [
        admin_conn.execute("SELECT pg_get_functiondef(%s::regprocedure) AS d", (f"{n}(jsonb)",)).fetchone()["d"] for n in names
    ]
    with admin_conn.transaction():
        for n in names:
            admin_conn.execute(
                f"CREATE OR REPLACE FUNCTION {n}(checkpoint jsonb) RETURNS TABLE (audit_id bigint, problem text) "
                "LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$ SELECT NULL::bigint, NULL::text WHERE false $$"
            )
    try:
        yield
    finally:
        with admin_conn.transaction():
            for d in originals:
                admin_conn.execute(d)


def test_verify_audit_recompute_is_not_fooled_by_replaced_functions(settings, admin_conn, make_user, key_path, tmp_path):
    """A superuser cuts the tail of a chain after a checkpoint and replaces the verifying functions:
    verify-audit (the database's verdict) says ok; verify-audit --recompute (SELECTs only, every hash
    recomputed in the runner) names the cut. An edited row is named too; put back, it passes again."""
    owner = make_user()
    remember(admin_conn, owner, "kept")
    remember(admin_conn, owner, "to be deleted by the superuser")
    store = tmp_path / "cps"
    env = cli_env(settings, key_path, store)
    assert cli(env, "anchor").returncode == 0
    out = cli(env, "verify-audit", "--recompute")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "recomputed here" in out.stdout and "all 1 checkpoints verified" in out.stdout
    with tail_cut(admin_conn, owner) as seal, verification_replaced(admin_conn):
        fooled = cli(env, "verify-audit")
        assert fooled.returncode == 0, "the attack: the database's own verdict is ok"
        out = cli(env, "verify-audit", "--recompute")
        assert out.returncode == 3, out.stdout + out.stderr
        assert f"chain {owner}: no seal {seal['chain_seq']}" in " ".join(out.stdout.split()), out.stdout
    with admin_conn.transaction():
        admin_conn.execute("SET LOCAL session_replication_role = replica")
        row = admin_conn.execute(
            "SELECT id, new_row FROM memoriesdb.audit_log WHERE chain = %s AND table_name = 'memories' ORDER BY id LIMIT 1",
            (owner,),
        ).fetchone()
        admin_conn.execute(
            "UPDATE memoriesdb.audit_log SET new_row = jsonb_set(new_row, '{content}', '\"edited\"') WHERE id = %s", (row["id"],)
        )
    try:
        out = cli(env, "verify-audit", "--recompute")
        assert out.returncode == 3 and f"audit row {row['id']}: contents do not match its hash" in out.stdout, out.stdout
    finally:
        with admin_conn.transaction():
            admin_conn.execute("SET LOCAL session_replication_role = replica")
            admin_conn.execute("UPDATE memoriesdb.audit_log SET new_row = %s WHERE id = %s", (Jsonb(row["new_row"]), row["id"]))
    assert cli(env, "verify-audit", "--recompute").returncode == 0


def test_went_back_compares_each_citus_node_range():
    """On Citus a checkpoint also holds the newest audit row of each node's id range (audit_rows_by_range): a later one
    with fewer rows in any range went back, though its newest row overall (audit_rows) did not."""
    earlier = {"chains": [], "audit_rows": 2**49 + 9, "audit_rows_by_range": {"1": 2**48 + 7, "2": 2**49 + 9}}
    later = {"chains": [], "audit_rows": 2**49 + 12, "audit_rows_by_range": {"1": 2**48 + 5, "2": 2**49 + 12}}
    assert anc.went_back(earlier, later) == [
        f"audit rows of node range 1 up to {2**48 + 5}, {2**48 + 7} in the checkpoint before"
    ]
    assert anc.went_back(earlier, {**later, "audit_rows_by_range": {"1": 2**48 + 7, "2": 2**49 + 12}}) == []
    # a single node's checkpoints have no ranges: nothing more to compare
    assert anc.went_back({"chains": [], "audit_rows": 5}, {"chains": [], "audit_rows": 6}) == []
