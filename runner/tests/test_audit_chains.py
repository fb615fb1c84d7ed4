"""Per-owner audit chains under real concurrency (issue 14): what one session in pgTAP cannot show."""

from __future__ import annotations

import time

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from .concurrency import run_in_threads


def _key(admin_conn, uid) -> str:
    return admin_conn.execute("SELECT memoriesdb.create_api_key(%s) AS k", (uid,)).fetchone()["k"]


def _verify(admin_conn, checkpoint=None) -> dict:
    with admin_conn.transaction():
        admin_conn.execute("SET LOCAL ROLE memoriesdb_auditor")
        if checkpoint is None:
            return admin_conn.execute("SELECT * FROM memoriesdb.verify_audit_chain()").fetchone()
        return admin_conn.execute("SELECT * FROM memoriesdb.verify_audit_chain(%s)", (Jsonb(checkpoint),)).fetchone()


def test_an_open_transaction_of_one_tenant_never_blocks_anothers_commit(database, make_user, admin_conn):
    """alice fires her seal early (SET CONSTRAINTS ALL IMMEDIATE) and leaves her transaction open:
    her chain is locked, nobody else's. With one global chain, bob's commit waited for her."""
    alice, bob = make_user(), make_user()
    alice_key, bob_key = _key(admin_conn, alice), _key(admin_conn, bob)
    seals = "SELECT count(*) AS n FROM memoriesdb.audit_seals WHERE chain = %s"
    before = admin_conn.execute(seals, (alice,)).fetchone()["n"]
    with psycopg.connect(database) as holder, psycopg.connect(database, autocommit=True) as other:
        holder.execute("SET CONSTRAINTS ALL IMMEDIATE")
        holder.execute("SELECT memoriesdb.authenticate(%s)", (alice_key,))
        holder.execute("SELECT memoriesdb.remember('alice holds her chain')")
        assert admin_conn.execute(seals, (alice,)).fetchone()["n"] == before, "her seal is not committed yet"

        other.execute("SET statement_timeout = '5s'")
        started = time.monotonic()
        with other.transaction():
            other.execute("SELECT memoriesdb.authenticate(%s)", (bob_key,))
            other.execute("SELECT memoriesdb.remember('bob commits meanwhile')")
        assert time.monotonic() - started < 2, "bob's commit waited for alice's open transaction"

        # the lock is real, and not waited for: alice's own second session commits at once, its rows
        # wait for her chain (audit_pending) ...
        waiting = "SELECT count(*) AS n FROM memoriesdb_internal.audit_pending WHERE chain = %s"
        started = time.monotonic()
        with other.transaction():
            other.execute("SELECT memoriesdb.authenticate(%s)", (alice_key,))
            other.execute("SELECT memoriesdb.remember('alice, second session')")
        assert time.monotonic() - started < 2, "alice's second session waited for her first one"
        assert admin_conn.execute(waiting, (alice,)).fetchone()["n"] == 1
        assert _verify(admin_conn)["ok"], "rows that wait for their chain are not rows inserted behind the ledger"
        holder.commit()
        # ... until her chain's next sealer (her next write) seals them, in order, before its own
        with other.transaction():
            other.execute("SELECT memoriesdb.authenticate(%s)", (alice_key,))
            other.execute("SELECT memoriesdb.remember('alice, once her chain is free')")
        assert admin_conn.execute(waiting, (alice,)).fetchone()["n"] == 0
    assert admin_conn.execute(seals, (alice,)).fetchone()["n"] >= before + 3  # hers, the waiting one, the next
    assert _verify(admin_conn)["ok"]


def test_eight_owners_writing_and_transferring_concurrently_keep_verifying_chains(database, make_user, admin_conn):
    users = [make_user() for _ in range(8)]
    keys = [_key(admin_conn, u) for u in users]
    for i, _u in enumerate(users):  # each accepts transfers from the one before it
        with psycopg.connect(database, autocommit=True) as conn, conn.transaction():
            conn.execute("SELECT memoriesdb.authenticate(%s)", (keys[i],))
            conn.execute("SELECT memoriesdb.accept_sender(%s)", (users[i - 1],))

    def writer(n: int) -> None:
        with psycopg.connect(database, autocommit=True, row_factory=dict_row) as conn:
            for i in range(25):
                with conn.transaction():
                    conn.execute("SELECT memoriesdb.authenticate(%s)", (keys[n],))
                    mid = conn.execute("SELECT memoriesdb.remember(%s) AS id", (f"owner {n} memory {i}",)).fetchone()["id"]
                    if i % 5 == 0:  # a transfer seals two chains at once
                        conn.execute("SELECT memoriesdb.transfer(%s, %s, 'passing it on')", (mid, users[(n + 1) % 8]))

    errors = run_in_threads(writer, 8)
    assert not errors, errors
    # a receiver's chain held by its owner's own commit at that moment: the transfer's row in it waited
    # for the chain instead; the worker (or the owner's next write) seals it
    admin_conn.execute("SELECT memoriesdb.audit_seal_pending()")
    assert admin_conn.execute("SELECT count(*) AS n FROM memoriesdb_internal.audit_pending").fetchone()["n"] == 0
    for u in users:
        positions = [
            r["chain_seq"]
            for r in admin_conn.execute("SELECT chain_seq FROM memoriesdb.audit_seals WHERE chain = %s ORDER BY chain_seq", (u,))
        ]
        assert positions == list(range(1, len(positions) + 1)), "each chain is numbered without gaps"
    pairs = admin_conn.execute(
        "SELECT count(*) AS n FROM memoriesdb.audit_seals WHERE chain = ANY(%s) AND jsonb_array_length(peers) = 1", (users,)
    ).fetchone()["n"]
    assert pairs == 2 * 8 * 5, "each transfer's two seals name each other"
    with admin_conn.transaction():
        admin_conn.execute("SET LOCAL ROLE memoriesdb_auditor")
        checkpoint = admin_conn.execute("SELECT memoriesdb.audit_checkpoint() AS cp").fetchone()["cp"]
    assert {str(u) for u in users} <= {c["chain"] for c in checkpoint["chains"]}
    assert _verify(admin_conn, checkpoint)["ok"]
