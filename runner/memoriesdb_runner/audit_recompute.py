"""The audit history recomputed outside the database (`memoriesdb verify-audit --recompute`).

`verify_audit_chain()` and `verify_checkpoint()` are functions of the ledger: a superuser who can cut
the log can also replace them to answer ok. This module runs none of them. It reads `audit_log`,
`audit_seals` and `audit_waiting` with plain SELECTs as the auditor and recomputes here every row
hash (the canonical form of audit_log.sql's audit_canonical()), every seal's row digest and hash
(audit_seal_hash()), every chain's links and positions, the peers of each transaction's seals, and
each signed checkpoint's chain heads. It trusts the server's built-in output of the columns (jsonb as
text, timestamps) and SHA-256, nothing the ledger defines; and against a signed checkpoint it trusts
not even the rows: a history that hashes to the checkpointed heads cannot be forged without a
SHA-256 preimage.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LEGACY = "legacy"

ROWS_SQL = """
SELECT id, created_at, created_by::text AS created_by, db_role, application_name, txid::text AS txid, table_name,
       row_id::text AS row_id, memory_id::text AS memory_id, op, old_row::text AS old_row, new_row::text AS new_row,
       login::text AS login, vouched_by::text AS vouched_by, chain::text AS chain, row_hash
  FROM memoriesdb.audit_log ORDER BY id"""
SEALS_SQL = """
SELECT seq, txid::text AS txid, first_id, last_id, row_count, rows_digest, prev_hash, seal_hash, created_at,
       chain::text AS chain, chain_seq, peers::text AS peers
  FROM memoriesdb.audit_seals ORDER BY seq"""
WAITING_SQL = "SELECT chain::text AS chain, txid::text AS txid FROM memoriesdb.audit_waiting"


class Raw(str):
    """JSON text taken as the server printed it (a jsonb column): put into the array unchanged."""


def _json(v) -> str:
    """One element of a jsonb array as PostgreSQL prints it: its strings escape ", \\ and the
    control characters (\\b \\f \\n \\r \\t, else \\u00xx) and nothing else, as json.dumps does."""
    if v is None:
        return "null"
    if isinstance(v, Raw):
        return str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return json.dumps(str(v), ensure_ascii=False)


def jsonb_array(values: Iterable) -> bytes:
    """`jsonb_build_array(...)::text`, UTF-8: elements separated by ", "."""
    return ("[" + ", ".join(_json(v) for v in values) + "]").encode()


def epoch_us(t: datetime) -> int:
    """`(extract(epoch FROM t) * 1000000)::bigint`: exact, timestamps have microseconds."""
    return (t - EPOCH) // _MICROSECOND


_MICROSECOND = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - EPOCH


def row_hash(r: dict) -> bytes:
    """The SHA-256 audit_canonical() hashes: the fields of v0.1, then login and vouched_by (rows
    from v0.4 that have them) and chain (rows of per-owner chains carry all three)."""
    fields = [
        r["id"],
        epoch_us(r["created_at"]),
        r["created_by"],
        r["db_role"],
        r["application_name"],
        r["txid"],
        r["table_name"],
        r["row_id"],
        r["memory_id"],
        r["op"],
        None if r["old_row"] is None else Raw(r["old_row"]),
        None if r["new_row"] is None else Raw(r["new_row"]),
    ]
    if r["chain"] is not None:
        fields += [r["login"], r["vouched_by"], r["chain"]]
    elif r["login"] is not None or r["vouched_by"] is not None:
        fields += [r["login"], r["vouched_by"]]
    return hashlib.sha256(jsonb_array(fields)).digest()


def seal_hash(s: dict) -> bytes:
    """audit_seal_hash(): a legacy seal's fields; a per-owner chain's also its time, chain,
    position and peers."""
    fields = [
        s["seq"],
        s["txid"],
        s["first_id"],
        s["last_id"],
        s["row_count"],
        bytes(s["rows_digest"]).hex(),
        bytes(s["prev_hash"]).hex(),
    ]
    if s["chain"] is not None:
        fields += [epoch_us(s["created_at"]), s["chain"], s["chain_seq"], Raw(s["peers"] or "[]")]
    return hashlib.sha256(jsonb_array(fields)).digest()


def genesis(chain: str | None) -> bytes:
    if chain is None:
        return hashlib.sha256(b"memoriesdb audit chain").digest()
    return hashlib.sha256(f"memoriesdb audit chain {chain}".encode()).digest()


@dataclass
class Recomputed:
    rows: int = 0
    seals: int = 0
    waiting: int = 0  # rows committed that wait for their seal (audit_waiting)
    problems: list[tuple[int | None, str]] = field(default_factory=list)
    heads: dict[str, tuple[int, str]] = field(default_factory=dict)  # chain name -> (position, seal hash hex)
    positions: dict[tuple[str, int], str] = field(default_factory=dict)  # (chain name, position) -> seal hash hex
    last_id: int = 0
    last_by_range: dict = field(default_factory=dict)  # id >> 48 (a Citus node's range) -> its newest row
    waiting_groups: dict[tuple[str, str], tuple[int, str | None]] = field(
        default_factory=dict
    )  # (chain, txid) -> (rows, digest hex)
    sealed_groups: set[tuple[str, str, int, str]] = field(default_factory=set)  # (chain, txid, row_count, rows_digest hex)

    @property
    def ok(self) -> bool:
        return not self.problems

    def against(self, checkpoint: dict) -> list[str]:
        """What a (signed, root-checked) checkpoint holds that the recomputed history does not."""
        found = []
        for c in checkpoint["chains"]:
            have = self.positions.get((c["chain"], c["seq"]))
            if have is None:
                end = self.heads.get(c["chain"])
                found.append(
                    f"chain {c['chain']}: no seal {c['seq']} (the log ends at {end[0] if end else 'nothing'}: "
                    "the tail was removed, or the chain emptied)"
                )
            elif have != c["hash"]:
                found.append(f"chain {c['chain']}, seal {c['seq']}: not the seal the checkpoint holds (rewritten or forked)")
        for w in checkpoint.get("waiting", []):
            still = self.waiting_groups.get((w["chain"], w["txid"])) == (w["rows"], w["digest"])
            if not still and (w["chain"], w["txid"], w["rows"], w["digest"]) not in self.sealed_groups:
                found.append(
                    f"chain {w['chain']}: the {w['rows']} audit rows of transaction {w['txid']}, waiting for their seal at the "
                    "checkpoint, are gone or not as they were (removed or rewritten while they waited)"
                )
        if self.last_id < checkpoint["audit_rows"]:
            found.append(f"the audit log ends at row {self.last_id}, the checkpoint saw rows up to {checkpoint['audit_rows']}")
        # on Citus: the newest row of each node's id range (group g numbers from g * 2^48; docs/citus.md, section 6)
        for r, last in checkpoint.get("audit_rows_by_range", {}).items():
            if self.last_by_range.get(int(r), 0) < last:
                found.append(
                    f"the audit rows numbered by node range {r} end at row {self.last_by_range.get(int(r), 0)}, "
                    f"the checkpoint saw rows up to {last} there"
                )
        return found


def recompute(
    rows: Iterable[dict], seals: Iterable[dict], waiting: Iterable[dict], progress: Callable[[int], None] | None = None
) -> Recomputed:
    """Everything verify_audit_chain() checks, here. rows in id order; progress(n) after each 10,000."""
    out = Recomputed()
    problem = out.problems.append
    groups: dict[tuple[str, str | None], list[tuple[int, bytes]]] = defaultdict(list)  # (txid, chain) -> [(id, stored hash)]
    for r in rows:
        out.rows += 1
        out.last_id = max(out.last_id, r["id"])
        out.last_by_range[r["id"] >> 48] = max(out.last_by_range.get(r["id"] >> 48, 0), r["id"])
        stored = bytes(r["row_hash"])
        if row_hash(r) != stored:
            problem((r["id"], f"audit row {r['id']}: contents do not match its hash (edited, or moved to another id)"))
        groups[(r["txid"], r["chain"])].append((r["id"], stored))
        if progress and out.rows % 10000 == 0:
            progress(10000)
    waits = {(w["txid"], w["chain"]) for w in waiting}
    by_chain: dict[str | None, list[dict]] = defaultdict(list)
    covered: dict[tuple[str, str | None], set[int]] = defaultdict(set)
    seal_list = list(seals)
    for s in seal_list:
        out.seals += 1
        by_chain[s["chain"]].append(s)
        members = [(i, h) for i, h in groups.get((s["txid"], s["chain"]), []) if s["first_id"] <= i <= s["last_id"]]
        covered[(s["txid"], s["chain"])].update(i for i, _ in members)
        digest = hashlib.sha256(b"".join(h for _, h in sorted(members))).digest()
        if len(members) != s["row_count"] or digest != bytes(s["rows_digest"]):
            problem(
                (
                    s["first_id"],
                    f"audit rows {s['first_id']}..{s['last_id']} (seal {s['chain_seq'] or s['seq']} of chain "
                    f"{s['chain'] or LEGACY}): {len(members)} of {s['row_count']} rows remain or their order changed",
                )
            )
    for s in seal_list:
        if s["chain"] is not None:
            out.sealed_groups.add((s["chain"], s["txid"], s["row_count"], bytes(s["rows_digest"]).hex()))
    for key, members in groups.items():
        if key in waits:
            rest = sorted((i, h) for i, h in members if i not in covered.get(key, ()))
            out.waiting += len(rest)
            if rest:
                out.waiting_groups[(key[1], key[0])] = (len(rest), hashlib.sha256(b"".join(h for _, h in rest)).hexdigest())
            continue
        for i, _ in members:
            if i not in covered.get(key, ()):
                problem((i, f"audit row {i}: not covered by any seal (inserted outside the ledger)"))
    for chain, chain_seals in by_chain.items():
        name = chain or LEGACY
        chain_seals.sort(key=lambda s: (_position(s), s["seq"]))  # ties (a moved legacy seal) by seq, as the database
        prev, expect = genesis(chain), 1
        for s in chain_seals:
            pos = _position(s)
            stored = bytes(s["seal_hash"])
            if seal_hash(s) != stored:
                problem((s["first_id"], f"seal {pos} of chain {name}: seal edited"))
            elif pos != expect:
                problem((s["first_id"], f"seal {pos} of chain {name}: a seal before it is missing"))
            elif bytes(s["prev_hash"]) != prev:
                problem((s["first_id"], f"seal {pos} of chain {name}: chain broken: prev_hash does not match the previous seal"))
            prev, expect = stored, pos + 1
            out.positions[(name, pos)] = stored.hex()
            out.heads[name] = (pos, stored.hex())
    _peers(seal_list, waits, problem)
    out.problems.sort(key=lambda p: (p[0] is None, p[0] or 0, p[1]))
    return out


def _position(s: dict) -> int:
    """A seal's position in its chain as audit_findings() takes it, coalesce(chain_seq, seq): a legacy
    seal's chain_seq is not under its hash, so one set there moves it (and breaks the chain) in both."""
    return s["chain_seq"] if s["chain_seq"] is not None else s["seq"]


def _peers(seals: list[dict], waits: set, problem) -> None:
    """The seals of one transaction name each other (audit_findings() step 5): a peer named with its
    position is that seal of that transaction and names this one back; a peer named without one
    (sealed later) is some seal of that chain and transaction naming this one, or still waits."""
    by_tx: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for s in seals:
        if s["chain"] is not None:
            by_tx[(s["txid"], s["chain"])].append(s)

    def names(q: dict, s: dict) -> bool:
        return any(p["chain"] == s["chain"] and p.get("seq") in (None, s["chain_seq"]) for p in json.loads(q["peers"] or "[]"))

    for s in seals:
        if s["chain"] is None or not s["peers"]:
            continue
        for p in json.loads(s["peers"]):
            candidates = [q for q in by_tx.get((s["txid"], p["chain"]), []) if p.get("seq") is None or q["chain_seq"] == p["seq"]]
            if any(names(q, s) for q in candidates):
                continue
            if p.get("seq") is None and (s["txid"], p["chain"]) in waits:
                continue
            problem(
                (
                    s["first_id"],
                    f"seal {s['chain_seq']} of chain {s['chain']}: its peer, seal "
                    f"{p.get('seq') if p.get('seq') is not None else '(sealed later)'} of chain {p['chain']}, "
                    "is missing or does not name it back",
                )
            )


async def fetch_and_recompute(conn, progress: Callable[[int], None] | None = None) -> Recomputed:
    """The three SELECTs over conn (the auditor's), in one REPEATABLE READ snapshot, then recompute."""
    async with conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        seals = await (await conn.execute(SEALS_SQL)).fetchall()
        waiting = await (await conn.execute(WAITING_SQL)).fetchall()
        rows = []
        async with conn.cursor(name="memoriesdb_audit_rows") as cur:
            await cur.execute(ROWS_SQL)
            async for r in cur:
                rows.append(r)
    return recompute(rows, seals, waiting, progress)
