"""Checkpoints kept outside the database (`memoriesdb anchor`, `anchor-keygen`, and in `worker all`).

The ledger's audit_checkpoint() names every audit chain's head and a Merkle root over them. The
anchor signs it with an Ed25519 key the database never sees and appends it to a store the
database's administrators cannot write (checkpoint_store). Later, verify-audit checks each stored
checkpoint's signature and root, then asks the database whether its log still holds what the
checkpoint committed to: truncation, rewrites, forks and emptied tables are then caught."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import time
from pathlib import Path

import structlog
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from . import db, metrics
from .checkpoint_store import CheckpointStore, new_name, open_store
from .errors import ConfigurationError, RunnerError
from .safety import check_private_file
from .settings import Settings

log = structlog.get_logger("memoriesdb.anchor")

RECORD_FORMAT = "memoriesdb-signed-checkpoint/1"
CHECKPOINT_FORMAT = "memoriesdb-checkpoint/1"


# --- the checkpoint's bytes and root (audit contract) ----------------------------------------


def canonical_bytes(checkpoint: dict) -> bytes:
    """The bytes that are signed: sorted keys, no spaces, UTF-8."""
    return json.dumps(checkpoint, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def merkle_root(chains: list[dict]) -> str:
    """The root over the chains' heads, in their order: leaves sha256("memoriesdb-leaf:chain:seq:hash"),
    reduced pairwise (sha256 of the two digests' bytes), an odd last node carried up unchanged."""
    if not chains:
        return hashlib.sha256(b"memoriesdb-empty").hexdigest()
    level = [hashlib.sha256(f"memoriesdb-leaf:{c['chain']}:{c['seq']}:{c['hash']}".encode()).digest() for c in chains]
    while len(level) > 1:
        nxt = [hashlib.sha256(level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0].hex()


# --- keys -------------------------------------------------------------------------------------


def key_id(public_key: Ed25519PublicKey) -> str:
    """sha256 of the raw 32-byte public key, hex."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def public_key_path(private_path: Path) -> Path:
    return private_path.with_name(private_path.name + ".pub")


def generate_key(path: Path) -> tuple[Path, str]:
    """A new Ed25519 private key at path (PEM, PKCS#8, mode 0600) and its public key at path.pub
    (PEM); refuses to replace either. Returns (public key path, key id)."""
    pub_path = public_key_path(path)
    for p in (path, pub_path):
        if p.exists() or p.is_symlink():
            raise ConfigurationError(f"{p} exists: refusing to overwrite a key (move it away first)")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    _write_new(path, private_pem, 0o600)
    try:
        _write_new(pub_path, public_pem, 0o644)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return pub_path, key_id(key.public_key())


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """The signing key; refused when another user could read or write the file."""
    check_private_file(path, what="anchor key file", secret=True)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"anchor key file {path}: not an unencrypted PEM private key ({exc})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigurationError(f"anchor key file {path}: not an Ed25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except ValueError as exc:
        raise ConfigurationError(f"public key file {path}: not a PEM public key ({exc})") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigurationError(f"public key file {path}: not an Ed25519 key")
    return key


# --- signed records ---------------------------------------------------------------------------


def sign(checkpoint: dict, key: Ed25519PrivateKey) -> dict:
    """The stored record: the checkpoint, the signature over its canonical bytes, the key's id."""
    return {
        "format": RECORD_FORMAT,
        "checkpoint": checkpoint,
        "signature": base64.b64encode(key.sign(canonical_bytes(checkpoint))).decode("ascii"),
        "key_id": key_id(key.public_key()),
    }


def record_bytes(record: dict) -> bytes:
    return (json.dumps(record, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


class BadRecord(Exception):
    """A stored record that does not check out; str() says what is wrong."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind  # unreadable, unknown key, bad signature, root mismatch


def check_record(data: bytes, keys: dict[str, Ed25519PublicKey]) -> dict:
    """The checkpoint of a stored record, after checking its signature with the key its key_id
    names (one of keys) and its root against its chains; BadRecord otherwise."""
    try:
        record = json.loads(data)
        checkpoint, signature, kid = record["checkpoint"], record["signature"], record["key_id"]
        if record.get("format") != RECORD_FORMAT or not isinstance(checkpoint, dict):
            raise ValueError(f"format {record.get('format')!r}")
        raw = base64.b64decode(signature, validate=True)
    except KeyError as exc:
        raise BadRecord("unreadable", f"not a signed checkpoint: no {exc}") from exc
    except (ValueError, TypeError) as exc:
        raise BadRecord("unreadable", f"not a signed checkpoint: {exc}") from exc
    key = keys.get(kid)
    if key is None:
        raise BadRecord("unknown key", f"signed by key {str(kid)[:16]}…, which is not among the public keys given")
    try:
        key.verify(raw, canonical_bytes(checkpoint))
    except InvalidSignature as exc:
        raise BadRecord("bad signature", "the signature does not match the checkpoint (altered, or another key)") from exc
    try:
        root = merkle_root(checkpoint["chains"])
    except (KeyError, TypeError) as exc:
        raise BadRecord("unreadable", f"checkpoint without well-formed chains: {exc}") from exc
    if root != checkpoint.get("root"):
        raise BadRecord("root mismatch", f"root {str(checkpoint.get('root'))[:16]}… is not the root of its chains ({root[:16]}…)")
    return checkpoint


def went_back(earlier: dict, later: dict) -> list[str]:
    """What a later checkpoint undoes of an earlier one: a history only grows, so every chain of the
    earlier is in the later, at the same seal or further on, and no audit row is gone. Seen from the
    checkpoints alone: one taken after the log was cut, rewritten or restored from a backup."""
    found = []
    heads = {c["chain"]: c for c in later["chains"]}
    for c in earlier["chains"]:
        now = heads.get(c["chain"])
        if now is None:
            found.append(f"chain {c['chain']} is gone (seal {c['seq']} in the checkpoint before)")
        elif now["seq"] < c["seq"]:
            found.append(f"chain {c['chain']} is back at seal {now['seq']} (seal {c['seq']} in the checkpoint before)")
        elif now["seq"] == c["seq"] and now["hash"] != c["hash"]:
            found.append(f"chain {c['chain']}: another seal {c['seq']} than in the checkpoint before (rewritten or forked)")
    if later["audit_rows"] < earlier["audit_rows"]:
        found.append(f"{later['audit_rows']} audit rows, {earlier['audit_rows']} in the checkpoint before")
    # on Citus: the newest row of each node's id range (docs/citus.md, section 6)
    ranges = later.get("audit_rows_by_range", {})
    for r, last in earlier.get("audit_rows_by_range", {}).items():
        if ranges.get(r, 0) < last:
            found.append(f"audit rows of node range {r} up to {ranges.get(r, 0)}, {last} in the checkpoint before")
    return found


# --- anchoring --------------------------------------------------------------------------------


class Anchor:
    """What one anchoring needs: the signing key and the store (checked when made)."""

    def __init__(self, settings: Settings, store: CheckpointStore | None = None):
        if not settings.anchor_key_file:
            raise ConfigurationError("no signing key: set MEMORIESDB_ANCHOR_KEY_FILE (make one with `memoriesdb anchor-keygen`)")
        self.key = load_private_key(Path(settings.anchor_key_file).expanduser())
        self.key_id = key_id(self.key.public_key())
        if store is None:
            if not settings.anchor_store:
                raise ConfigurationError("no checkpoint store: set MEMORIESDB_ANCHOR_STORE to a directory or s3://bucket/prefix")
            store = open_store(settings.anchor_store, s3_endpoint_url=settings.anchor_s3_endpoint_url)
        self.store = store

    async def take(self, conn) -> dict:
        # first what waits for its chain, so the checkpoint covers every committed write it can
        # (each call its own transaction; a chain still held stays for the next checkpoint)
        for _ in range(100):
            if not (await db.row(conn, "audit_seal_pending", max_seals=1000))["sealed"]:
                break
        checkpoint = (await db.row(conn, "audit_checkpoint"))["checkpoint"]
        if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
            raise RunnerError(f"audit_checkpoint() answered an unknown format: {str(checkpoint)[:100]}")
        if merkle_root(checkpoint["chains"]) != checkpoint["root"]:
            raise RunnerError("audit_checkpoint() answered a root that is not the root of its chains: not signed")
        return checkpoint

    def newest_stored(self) -> dict | None:
        """The newest checkpoint in the store signed with this key (files someone else put there are
        passed over: the last 10 are tried), or None; a store that cannot be read is no reason not to anchor."""
        try:
            names = self.store.names()
        except Exception:
            return None
        for name in reversed(names[-10:]):
            try:
                return check_record(self.store.get(name), {self.key_id: self.key.public_key()})
            except Exception:
                continue
        return None

    async def store_signed(self, checkpoint: dict) -> str:
        data = record_bytes(sign(checkpoint, self.key))
        return await asyncio.to_thread(self.store.put, new_name(), data)


async def anchor_once(settings: Settings, anchor: Anchor | None = None) -> tuple[str, dict]:
    """Take a checkpoint over the worker's connection, sign it, store it: (where, checkpoint)."""
    anchor = anchor or Anchor(settings)
    conn = await db.connect(settings.dsn)
    async with conn:
        checkpoint = await anchor.take(conn)
    where = await anchor.store_signed(checkpoint)
    metrics.ANCHORS.labels("ok").inc()
    metrics.LAST_ANCHOR.set(time.time())
    return where, checkpoint


async def run_anchor_loop(
    settings: Settings, stop: asyncio.Event, *, until_empty: bool = False, anchor: Anchor | None = None
) -> int:
    """`worker all`: a checkpoint now and then every anchor_interval_seconds until stop (once with
    until_empty). Database faults are retried with backoff; a store that fails is logged, counted
    and tried again at the next interval. Returns the number of checkpoints stored."""
    anchor = anchor or Anchor(settings)  # a missing or unsafe key, a bad store: ConfigurationError at start
    pool = db.make_pool(settings.dsn, max_size=1, timeout=settings.db_timeout_seconds)
    await pool.open(wait=False)
    stored = 0
    last = await asyncio.to_thread(anchor.newest_stored)  # the checkpoint stored before: the next must not undo it
    log.info("anchor ready", store=anchor.store.location, key_id=anchor.key_id, interval_s=settings.anchor_interval_seconds)

    async def take():
        async with pool.connection() as conn:
            return await anchor.take(conn)

    try:
        while not stop.is_set():
            try:
                checkpoint = await db.retry_db("anchor", take, stop=stop, log=log, beat="anchor")
                where = await anchor.store_signed(checkpoint)
            except db.DatabaseUnavailable:
                break
            except Exception as exc:  # the store (disk full, S3 unreachable), or the ledger refusing
                metrics.ANCHORS.labels("failed").inc()
                log.error("anchoring failed", error=str(exc).strip()[:300])
            else:
                stored += 1
                metrics.ANCHORS.labels("ok").inc()
                metrics.LAST_ANCHOR.set(time.time())
                log.info("checkpoint anchored", where=where, root=checkpoint["root"], audit_rows=checkpoint["audit_rows"])
                if last is not None and last.get("ledger") == checkpoint.get("ledger"):
                    behind = went_back(last, checkpoint)
                    if behind:  # stored all the same: signed, it is the evidence; verify-audit names it
                        metrics.ANCHORS.labels("went_back").inc()
                        log.error("the audit history went back since the last checkpoint", where=where, problems=behind[:5])
                last = checkpoint
            if until_empty or await db.sleep_or_stop(stop, settings.anchor_interval_seconds, "anchor"):
                break
    finally:
        metrics.HEALTH.forget("anchor")
        await pool.close(timeout=1)
    return stored
