"""search_text() answers interrupts: a worst-case search is cancellable from another session.

pg_trgm's word_similarity() and ts_rank_cd() never check for interrupts, so one call over a
large memory held its backend (and a cancel, a statement_timeout or a DROP DATABASE ... WITH
(FORCE) elsewhere on the cluster) for as long as it ran: quadratic in the memory's length. With
the ranking bounded to a window of each memory, every call is short and the executor's own
interrupt checks, between rows and between calls, answer.
"""

from __future__ import annotations

import threading
import time

import psycopg

from .conftest import remember

CANCEL_WITHIN_SECONDS = 10  # generous: a correctness bound (does it answer at all?), not a speed test


def test_worst_case_search_text_answers_a_cancel(database, admin_conn, make_user):
    uid = make_user()
    # the worst case for word similarity: every trigram of the memory is in the query, so
    # the similarity of every extent of the memory is examined (a single call over these
    # 300 kB ran for about 45 s, uninterruptibly, before the ranking was bounded)
    remember(admin_conn, uid, "ab " * 100_000)
    # within every bound on the query: 32 words (search_text_max_query_words), 8 of them
    # joined into a phrase (search_text_max_phrase_ops)
    query = '"' + " ".join(["ab"] * 9) + '" ' + " ".join(["ab"] * 23)

    started = threading.Event()
    outcome: dict = {}
    conn = psycopg.connect(database, autocommit=True)
    pid = conn.info.backend_pid

    def searcher() -> None:
        try:
            with conn.transaction():
                conn.execute("SET LOCAL ROLE memoriesdb_app")
                conn.execute("SELECT set_config('app.current_user', %s, true)", (str(uid),))
                started.set()
                # the same worst-case search again and again, so that the statement is
                # still running whenever the cancel comes; the first call alone used to
                # outlast the bound below
                conn.execute(
                    "SELECT count(*) FROM generate_series(1, 1000000) AS g"
                    " CROSS JOIN LATERAL memoriesdb.search_text(CASE WHEN g > 0 THEN %s END) AS s",
                    (query,),
                )
            outcome["result"] = "finished"
        except psycopg.errors.QueryCanceled:
            outcome["result"] = "canceled"
        except Exception as exc:  # pragma: no cover - reported by the assertion
            outcome["result"] = exc
        outcome["ended"] = time.monotonic()

    thread = threading.Thread(target=searcher, daemon=True)
    thread.start()
    assert started.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # until the search statement itself is running
        row = admin_conn.execute("SELECT state, query FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
        if row and row["state"] == "active" and "search_text" in row["query"]:
            break
        time.sleep(0.02)
    time.sleep(0.5)  # well inside the search
    assert admin_conn.execute("SELECT pg_cancel_backend(%s) AS ok", (pid,)).fetchone()["ok"]
    cancelled_at = time.monotonic()
    thread.join(CANCEL_WITHIN_SECONDS)
    try:
        assert not thread.is_alive(), f"search_text did not answer the cancel within {CANCEL_WITHIN_SECONDS} s"
        assert outcome["result"] == "canceled", outcome["result"]
        assert outcome["ended"] - cancelled_at < CANCEL_WITHIN_SECONDS
    finally:
        if thread.is_alive():  # the backend will end when the uninterruptible call returns
            admin_conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        else:
            conn.close()
