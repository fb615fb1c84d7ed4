"""The query-vector cache (issue 15) as `memoriesdb search` uses it, against the real ledger and the
fake Ollama server: a repeated search makes no provider call; the cache is each user's own; what it
stores is no query text; the runner normalises a query exactly as the ledger keys it."""

from __future__ import annotations

import asyncio
import json

import numpy as np
from click.testing import CliRunner

from memoriesdb_runner.cli import main
from memoriesdb_runner.search import normalise_query, search_text
from memoriesdb_runner.service import run_embed_workers

from .conftest import remember
from .fake_ollama import vector_for
from .test_cli import env_of


def _search(settings, text, key, **kw):
    return asyncio.run(search_text(settings, text, key, None, k=3, **kw))


def test_second_identical_search_makes_no_provider_call(settings, admin_conn, user, fake_ollama):
    uid, key = user
    remember(admin_conn, uid, "the spare key is under the blue flowerpot", "tea with oat milk")
    assert asyncio.run(run_embed_workers(settings, until_empty=True, install_signals=False)) == 2
    fake_ollama.calls.clear()

    first = _search(settings, "where is the spare key?", key)
    assert fake_ollama.calls == [["where is the spare key?"]], "a miss embeds the query once"
    second = _search(settings, "where is the spare key?", key)
    assert fake_ollama.calls == [["where is the spare key?"]], "a hit calls no provider"
    assert [r["id"] for r in first] == [r["id"] for r in second] and first, "and finds the same memories"
    assert [round(r["similarity"], 5) for r in first] == [round(r["similarity"], 5) for r in second]

    _search(settings, "  where is\tthe spare\u00a0key? ", key)
    assert len(fake_ollama.calls) == 1, "white space differences hit the same entry"
    _search(settings, "Where is the spare key?", key)
    assert fake_ollama.calls[1:] == [["Where is the spare key?"]], "another case is another query (cased models)"
    _search(settings, "where is the spare key?", key, use_cache=False)
    assert len(fake_ollama.calls) == 3, "use_cache=False (--no-cache) embeds anyway"


def test_the_cli_search_uses_the_cache(settings, user, fake_ollama):
    _, key = user
    env = {**env_of(settings), "MEMORIESDB_API_KEY": key}
    for _ in range(3):
        result = CliRunner().invoke(main, ["search", "lighthouse keeper", "-k", "2"], env=env)
        assert result.exit_code == 0, (result.output, result.exception)
    assert fake_ollama.calls == [["lighthouse keeper"]], "three searches, one embedding"
    result = CliRunner().invoke(main, ["search", "lighthouse keeper", "--no-cache"], env=env)
    assert result.exit_code == 0, (result.output, result.exception)
    assert len(fake_ollama.calls) == 2, "--no-cache embeds"


def test_another_user_never_hits_and_no_text_is_stored(settings, admin_conn, user, make_user, fake_ollama):
    uid, key = user
    other = make_user()
    other_key = admin_conn.execute("SELECT memoriesdb.create_api_key(%s) AS k", (other,)).fetchone()["k"]
    secret = "symptoms of a rare disease zq7"
    _search(settings, secret, key)
    _search(settings, secret, other_key)
    assert fake_ollama.calls == [[secret], [secret]], "the other user's identical search is a miss: it embeds"
    _search(settings, secret, other_key)
    assert len(fake_ollama.calls) == 2, "and then hits its own entry"

    rows = admin_conn.execute(
        "SELECT owner_id, digest, c::text AS whole FROM memoriesdb_internal.query_cache AS c WHERE owner_id IN (%s, %s)",
        (uid, other),
    ).fetchall()
    assert {r["owner_id"] for r in rows} == {uid, other} and len(rows) == 2
    assert len({r["digest"] for r in rows}) == 2, "the same query of two users: unrelated digests"
    assert not any("zq7" in r["whole"] or "disease" in r["whole"] for r in rows), "no query text is stored"


def test_a_query_too_long_for_the_cache_is_searched_uncached(settings, admin_conn, user, fake_ollama):
    _, key = user
    admin_conn.execute("UPDATE memoriesdb.config SET value = '20' WHERE key = 'query_cache_max_query_chars'")
    try:
        long_query = "a query much longer than twenty characters"
        for _ in range(2):
            _search(settings, long_query, key)
        assert fake_ollama.calls == [[long_query], [long_query]], "refused by the cache (MDB26): embedded each time"
    finally:
        admin_conn.execute("UPDATE memoriesdb.config SET value = '8000' WHERE key = 'query_cache_max_query_chars'")


def test_the_runner_normalises_as_the_ledger_does(admin_conn):
    samples = [
        "  plain  ",
        "tab\tnew\nline\r\nform\x0cfeed\x0bvt",
        "nbsp\u00a0ideographic\u3000em\u2003thin\u2009narrow\u202fnel\u0085line\u2028para\u2029ogham\u1680",
        "cafe\u0301 A\u030a \u212b Hangul \u1100\u1161",
        "zero\u200bwidth is no space; \x1c\x1d\x1e\x1f are not either",
        "Case Kept",
    ]
    for s in samples:
        theirs = admin_conn.execute("SELECT memoriesdb_internal.normalise_query(%s) AS n", (s,)).fetchone()["n"]
        assert normalise_query(s) == theirs, repr(s)
    assert normalise_query("Case  Kept ") == "Case Kept"


def test_a_hit_returns_the_vector_that_was_stored(settings, admin_conn, user, fake_ollama):
    _, key = user
    _search(settings, "vector round trip", key)
    with admin_conn.transaction():
        admin_conn.execute("SELECT memoriesdb.authenticate(%s)", (key,))
        v = admin_conn.execute(
            "SELECT memoriesdb.cached_query_vector('ollama:all-minilm', 'vector round trip')::text AS v"
        ).fetchone()["v"]
    expected = np.array(vector_for("vector round trip", fake_ollama.dim), dtype=np.float32)
    expected /= np.linalg.norm(expected)
    assert np.allclose(np.array(json.loads(v), dtype=np.float32), expected, atol=1e-6), "the provider's (normalised) vector"


def test_concurrent_stores_keep_the_bound_and_never_deadlock(settings, admin_conn, user):
    """8 clients of one user store distinct queries and hit one another's at once, the cache full: no error
    (no deadlock, no unique violation); the user holds at most the bound plus one per concurrent
    transaction (an entry another transaction holds is skipped, never waited for), and the next store
    evicts the excess: exactly the bound."""
    import threading

    import psycopg

    uid, key = user
    admin_conn.execute("UPDATE memoriesdb.config SET value = '5' WHERE key = 'query_cache_max_entries'")
    errors: list[BaseException] = []
    v = "[" + ",".join(["0.5"] * 4) + "]"

    def held() -> int:
        return admin_conn.execute(
            "SELECT count(*) AS n FROM memoriesdb_internal.query_cache WHERE owner_id = %s", (uid,)
        ).fetchone()["n"]

    def store(conn, query: str) -> None:
        conn.execute("SELECT memoriesdb.authenticate(%s)", (key,))
        conn.execute("SELECT memoriesdb.cache_query_vector('m', %s, %s::vector)", (query, v))

    def client(i: int) -> None:
        try:
            with psycopg.connect(settings.app_dsn, prepare_threshold=None) as conn:
                for n in range(40):
                    with conn.transaction():
                        store(conn, f"c{i} q{n}")
                        conn.execute("SELECT memoriesdb.cached_query_vector('m', %s)", (f"c{(i + 1) % 8} q{n}",))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    try:
        threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert 5 <= held() <= 5 + 8, "320 stores by 8 clients at a bound of 5: at most one over per concurrent transaction"
        with psycopg.connect(settings.app_dsn, prepare_threshold=None) as conn, conn.transaction():
            store(conn, "one more, alone")
        assert held() == 5, "the next store evicts all the excess"
    finally:
        admin_conn.execute("UPDATE memoriesdb.config SET value = '1000' WHERE key = 'query_cache_max_entries'")
