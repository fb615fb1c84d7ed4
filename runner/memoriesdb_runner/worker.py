"""The embedding worker: claim a batch, embed it, complete or fail each job.

Queue logic (leases, backoff, dead jobs, stale content) lives in the ledger's
SQL functions; this loop only moves batches between them and the provider.
No transaction is held open while the provider works.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from dataclasses import dataclass, field

import numpy as np
import structlog
from psycopg_pool import AsyncConnectionPool
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from . import db, metrics
from .errors import ConfigurationError, PermanentProviderError, TransientProviderError
from .providers import Provider, make_provider
from .settings import Settings

log = structlog.get_logger("memoriesdb.worker")
_backoff = wait_exponential_jitter(multiplier=0.5, max=30)


def _waiter(lease_seconds: float):
    """Exponential backoff with jitter, but a server's Retry-After wins, up to half a lease: the
    LeaseKeeper renews every third of a lease, so no wait outlives the lease it is waited under."""
    cap = min(300.0, lease_seconds / 2)

    def wait(state) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransientProviderError) and exc.retry_after is not None:
            return min(exc.retry_after, cap)
        return min(_backoff(state), cap)

    return wait


def _note_provider_error(state) -> None:
    exc = state.outcome.exception() if state.outcome else None
    if exc is not None:
        metrics.HEALTH.provider(False, str(exc)[:300])


def _retrying(attempts: int, lease_seconds: float = 300) -> AsyncRetrying:
    return AsyncRetrying(
        retry=retry_if_exception_type(TransientProviderError),
        stop=stop_after_attempt(attempts),
        wait=_waiter(lease_seconds),
        before_sleep=_note_provider_error,
        reraise=True,
    )


async def check_dimension(pool: AsyncConnectionPool, provider: Provider, attempts: int = 4) -> int:
    """Refuse to start when the configured model's dimension differs from the one the ledger registered
    for it (the model of provider 'configured'). When no such model is left (retired after another was
    activated), the worker's own provider embeds nothing and is not checked: 0."""
    async with pool.connection() as conn:
        column_dim = (await db.row(conn, "configured_model_dim"))["dim"]
    if column_dim is None:
        return 0
    async for attempt in _retrying(attempts):
        with attempt:
            model_dim = await provider.dimension()
    metrics.HEALTH.provider(True)
    if model_dim != column_dim:
        raise ConfigurationError(
            f"model {provider.model!r} makes {model_dim}-dimensional vectors but memories.embedding has "
            f"{column_dim} dimensions; use a {column_dim}-dimensional model or redeploy with embedding_dim={model_dim}"
        )
    return column_dim


async def check_bounds(pool: AsyncConnectionPool, settings: Settings) -> None:
    """Refuse to start when a claim would ask for more than the ledger lets one claim take (config
    embedding_max_batch_size, embedding_max_lease_seconds): every claim would be refused (MDB12)."""
    async with pool.connection() as conn:
        caps = await db.row(conn, "embedding_caps")
    problems = []
    if caps["max_batch_size"] is not None and settings.batch_size > caps["max_batch_size"]:
        problems.append(
            f"MEMORIESDB_BATCH_SIZE={settings.batch_size} is larger than the ledger lets one claim take "
            f"(config embedding_max_batch_size = {caps['max_batch_size']})"
        )
    if caps["max_lease_seconds"] is not None and settings.lease_seconds > caps["max_lease_seconds"]:
        problems.append(
            f"MEMORIESDB_LEASE_SECONDS={settings.lease_seconds} is longer than the ledger grants "
            f"(config embedding_max_lease_seconds = {caps['max_lease_seconds']:g}); the worker renews its "
            "leases while it embeds, so a batch may take longer than one lease"
        )
    if problems:
        raise ConfigurationError("; ".join(problems))


class LeaseKeeper:
    """The heartbeat of one claimed batch: renews its leases every lease_seconds/3 until stopped,
    so a batch that takes longer than one lease stays with its live worker, while a worker that
    dies (or hangs outside the event loop) loses its jobs one lease after its last renewal."""

    def __init__(self, worker: EmbedWorker, jobs: list[dict]):
        self._worker = worker
        self._jobs = list(jobs)
        self._leases = _leases(jobs)
        self._held = len(jobs)
        self._done = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    def drop(self, jobs: list[dict]) -> None:
        """Stop renewing these jobs (failed or deferred: their leases are given up), keep renewing the rest."""
        gone = {j["lease_id"] for j in jobs}  # a memory may be in a batch once per model: by lease
        kept = [j for j in self._jobs if j["lease_id"] not in gone]
        self._held -= len(self._jobs) - len(kept)
        self._jobs = kept
        self._leases = _leases(kept)

    async def stop(self) -> None:
        """Stop renewing (the batch is completed, failed or released); a renewal in flight is
        let finish rather than cut mid-statement. Idempotent."""
        self._done.set()
        try:  # a renewal stuck on a dead connection is not waited for
            await asyncio.wait_for(asyncio.shield(self._task), timeout=1.0)
        except TimeoutError:
            self._task.cancel()

    async def _run(self) -> None:
        every = self._worker.settings.lease_seconds / 3
        while self._held:
            try:
                await asyncio.wait_for(self._done.wait(), timeout=every)
                return
            except TimeoutError:
                pass
            try:
                async with self._worker.pool.connection() as conn:
                    renewed = (
                        await db.row(
                            conn, "renew_embedding_leases", **self._leases, lease_seconds=self._worker.settings.lease_seconds
                        )
                    )["renewed"]
            except Exception as exc:  # the next beat tries again; the lease still has 2/3 of its length
                if isinstance(exc, db.DB_FAULTS):
                    metrics.DB_FAULTS.labels("renew").inc()
                log.warning("lease renewal failed", jobs=self._held, error=str(exc).strip()[:300])
                continue
            if renewed < self._held:
                # expired before this beat (the worker stalled a whole lease) and maybe re-claimed:
                # those jobs' completions will come back lease_lost
                log.warning("leases lost while embedding", held=self._held, renewed=renewed)
                self._held = renewed


@dataclass
class Outcome:
    """What embedding one claimed batch came to, job by job: the jobs with their vectors, and the jobs
    that failed, in groups that met the same error (one provider call's)."""

    embedded: list[tuple[dict, np.ndarray]] = field(default_factory=list)
    dead: list[tuple[list[dict], str]] = field(default_factory=list)  # a permanent error: dead letters
    retry: list[tuple[list[dict], str]] = field(default_factory=list)  # transient, past the retries: backoff
    deferred: list[dict] = field(default_factory=list)  # the provider could not be reached: uncounted
    unreachable: TransientProviderError | None = None
    calls: int = 0  # provider calls that answered or were tried (retries of one call not counted)
    splits: int = 0  # batches split in two to isolate a permanent error


class EmbedWorker:
    def __init__(self, settings: Settings, pool: AsyncConnectionPool, provider: Provider, name: str | None = None):
        self.settings = settings
        self.pool = pool
        self.provider = provider
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.wake = asyncio.Event()
        self.done = 0
        self.failed = 0
        self._storing: asyncio.Task | None = None  # the previous batch's completion, still in flight
        self._next: asyncio.Task | None = None  # the next batch's claim, made while this one is embedded
        self._pipeline = False  # claim one batch ahead: only in run(), which gives a prefetched batch back
        self._stop: asyncio.Event | None = None
        self._unreachable = 0  # batches in a row the provider could not be reached for
        self._providers: dict[tuple[str, str], Provider] = {}  # (provider kind, model) -> provider, made on first use

    def provider_for(self, job: dict) -> Provider:
        """The provider a job's model embeds with: the worker's own for the model registered as
        'configured' (and for jobs of the released claim, which name no model); else one of the
        model's provider kind with the model's name, made once and kept."""
        kind, model = job.get("provider") or "configured", job.get("model")
        if kind == "configured" or model is None:
            return self.provider
        key = (kind, model)
        if key not in self._providers:
            self._providers[key] = make_provider(self.settings.model_copy(update={"provider": kind, "model": model}))
        return self._providers[key]

    def model_label(self, job: dict) -> str:
        """The model name stored with the job's vector (memories.embedding_model for the active model)."""
        return self.provider_for(job).model if (job.get("provider") or "configured") == "configured" else job["model"]

    async def aclose(self) -> None:
        """Close the providers made for the registry's models (the worker's own is its owner's to close)."""
        for p in self._providers.values():
            await p.aclose()
        self._providers.clear()

    async def _db(self, operation: str, name: str, *, many: bool = False, give_up_after: float | None = None, **params):
        """One statement of queries.sql, through retry_db: database faults are retried with backoff."""

        async def call():
            async with self.pool.connection() as conn:
                return await (db.rows if many else db.row)(conn, name, **params)

        return await db.retry_db(
            operation, call, stop=self._stop, log=log, beat=f"embed {self.name}", give_up_after=give_up_after
        )

    async def run(self, stop: asyncio.Event, *, until_empty: bool = False) -> None:
        """Until stop: claim, embed, store. A database fault never ends the loop: the call is retried
        with backoff (counted, logged, /readyz 503 meanwhile) and the loop goes on when it answers."""
        self._stop = stop
        self._pipeline = True
        beat = f"embed {self.name}"
        listener = asyncio.create_task(
            db.listen(self.settings.listen, "memoriesdb_embedding", self.wake, stop, self.settings.poll_seconds, log)
        )
        try:
            while not stop.is_set():
                metrics.HEALTH.beat(beat)
                try:
                    worked = await self.run_once(stop)
                except db.DatabaseUnavailable:
                    continue  # stopping during an outage: the loop condition ends it
                if worked:
                    continue
                if until_empty:
                    return
                self.wake.clear()
                waiters = [asyncio.create_task(self.wake.wait()), asyncio.create_task(stop.wait())]
                await asyncio.wait(waiters, timeout=self.settings.poll_seconds, return_when=asyncio.FIRST_COMPLETED)
                for w in waiters:
                    w.cancel()
        finally:
            listener.cancel()
            try:
                await self.flush()
                await self._give_back_prefetched()
                self._pipeline = False
                await self.aclose()
            except db.DatabaseUnavailable as exc:
                log.warning("batch not stored before stopping; its leases expire", error=str(exc))
            metrics.HEALTH.forget(beat)

    async def flush(self) -> None:
        """Wait for the batch being stored, if any."""
        if self._storing is not None:
            storing, self._storing = self._storing, None
            await storing

    async def _prefetch(self) -> tuple[list[dict], LeaseKeeper | None] | None:
        """The next batch, claimed while the current one is embedded: the claim's round trip and its
        server time overlap the provider's work instead of following it. One try: after a database
        fault (None) the next run_once claims the ordinary way, retried, storing what it holds first.
        Its leases are renewed from the claim on, like any batch's."""
        try:
            async with self.pool.connection() as conn:
                jobs = await db.rows(
                    conn,
                    "claim_model_embedding_jobs",
                    batch_size=self.settings.batch_size,
                    lease_seconds=self.settings.lease_seconds,
                    worker=self.name,
                )
        except db.DB_FAULTS as exc:
            metrics.DB_FAULTS.labels("claim").inc()
            log.info("prefetch claim failed; the next batch is claimed after this one", error=str(exc).strip()[:300])
            return None
        return jobs, (LeaseKeeper(self, jobs) if jobs else None)

    async def _take_prefetched(self) -> tuple[list[dict], LeaseKeeper | None] | None:
        """The prefetched claim's batch (waiting for the claim if it is still in flight), or None."""
        if self._next is None:
            return None
        task, self._next = self._next, None
        try:
            return await task
        except Exception as exc:  # not a database fault (those are None): claimed the ordinary way, which raises it
            log.warning("prefetch claim failed", error=str(exc).strip()[:300])
            return None

    async def _give_back_prefetched(self) -> None:
        """Stopping: the prefetched batch, not embedded, is released at once (not left to its leases)."""
        got = await self._take_prefetched()
        if got and got[0]:
            jobs, keeper = got
            await keeper.stop()
            await self._release(jobs)

    async def run_once(self, stop: asyncio.Event | None = None) -> int:
        """Claim and handle one batch; returns the number of jobs claimed. A pipeline: while the batch
        is embedded, the previous one is stored (one completion in flight) and the next one is
        claimed (one claim ahead, its leases renewed from the claim on)."""
        if stop is not None:
            self._stop = stop
        got = await self._take_prefetched()
        if got is None:
            jobs = await self._claim()
            keeper = None
        else:
            jobs, keeper = got
        if not jobs:
            if self._storing is None:
                return 0
            await self.flush()  # storing may re-queue stale jobs: look again
            return await self.run_once(stop)
        started = time.perf_counter()
        if keeper is None:
            keeper = LeaseKeeper(self, jobs)  # renews the batch's leases until it is stored, failed or released
        if self._pipeline and not (stop is not None and stop.is_set()):
            self._next = asyncio.create_task(self._prefetch())
        handed_over = False
        try:
            embed = asyncio.create_task(self._embed_by_model(jobs))
            if stop is not None:
                stopper = asyncio.create_task(stop.wait())
                while not (embed.done() or stopper.done()):  # a slow provider is no wedged loop: beat
                    metrics.HEALTH.beat(f"embed {self.name}")
                    await asyncio.wait([embed, stopper], timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
                stopper.cancel()
                if not embed.done():
                    # SIGTERM mid-batch: give the provider a moment, else hand the batch back
                    await asyncio.wait([embed], timeout=self.settings.shutdown_grace_seconds)
                    if not embed.done():
                        embed.cancel()
                        await keeper.stop()
                        await self._release(jobs)
                        return len(jobs)
            outcome = await embed
            failed = [j for group, _ in outcome.dead + outcome.retry for j in group] + outcome.deferred
            keeper.drop(failed)  # their leases are given up below; the embedded ones stay renewed
            for group, error in outcome.dead:
                await self._fail(group, error, permanent=True)
            for group, error in outcome.retry:
                await self._fail(group, error, permanent=False)
            if outcome.deferred:  # no attempt: the provider never saw these jobs
                await self._defer(outcome.deferred, str(outcome.unreachable))
            if outcome.unreachable is not None:
                metrics.HEALTH.provider(False, str(outcome.unreachable)[:300])
            else:
                self._unreachable = 0
                if outcome.retry:
                    metrics.HEALTH.provider(False, outcome.retry[-1][1][:300])
                elif outcome.embedded:
                    metrics.HEALTH.provider(True)
            if not outcome.embedded:
                return len(jobs)
            await self.flush()  # the leases are still renewed while the previous batch is stored
            self._storing = asyncio.create_task(self._complete(outcome.embedded, started, keeper))
            handed_over = True
            return len(jobs)
        finally:
            if not handed_over:
                await keeper.stop()

    async def _claim(self) -> list[dict]:
        """claim_embedding_jobs, retried through database faults. After a fault the batch in hand is
        stored first: its leases may have expired during the outage, and a claim that came back
        first would hand this worker its own jobs again (embedded twice, stored once)."""
        faulted = False

        async def call():
            nonlocal faulted
            if faulted:
                await self.flush()
            faulted = True  # stays set only if this try fails
            async with self.pool.connection() as conn:
                rows = await db.rows(
                    conn,
                    "claim_model_embedding_jobs",
                    batch_size=self.settings.batch_size,
                    lease_seconds=self.settings.lease_seconds,
                    worker=self.name,
                )
            faulted = False
            return rows

        return await db.retry_db("claim", call, stop=self._stop, log=log, beat=f"embed {self.name}")

    async def _embed_by_model(self, jobs: list[dict]) -> Outcome:
        """A claimed batch may hold jobs of several models: each model's jobs are embedded by its own
        provider (_embed_isolating), one model after the other, into one outcome."""
        groups: dict[tuple, list[dict]] = {}
        for j in jobs:
            groups.setdefault((j.get("provider"), j.get("model")), []).append(j)
        outcome = Outcome()
        for group in groups.values():
            try:
                provider = self.provider_for(group[0])
            except Exception as exc:  # a model this worker cannot serve (no such local model, ...)
                outcome.dead.append((group, f"no provider for model {group[0].get('model')!r}: {exc}"))
                continue
            part = await self._embed_isolating(group, provider)
            outcome.embedded += part.embedded
            outcome.dead += part.dead
            outcome.retry += part.retry
            outcome.deferred += part.deferred
            outcome.unreachable = outcome.unreachable or part.unreachable
            outcome.calls += part.calls
            outcome.splits += part.splits
        return outcome

    async def _embed_isolating(self, jobs: list[dict], provider: Provider | None = None) -> Outcome:
        """Embed a claimed batch in one provider call (transient errors retried with backoff). When the
        provider refuses it permanently for a reason that may be one input's (per_input: HTTP 400, 413,
        422, a bad vector), the batch is split in two and each half is embedded the same way, down to
        single jobs: only the inputs refused on their own go dead, with their own error, and their
        batch-mates are embedded. One poison input in a batch of n costs 2*ceil(log2 n) calls more
        than the batch's one (12: at most 8 more); k of them about 2k*log2(n/k); an error that is in
        fact the request's (every input refused) 2n-2 more. A refusal about the request as a whole
        (401, 403, 404) is not split: the whole batch goes dead with it. Transient errors keep their
        backoff: a group still failing after the retries goes back to the queue (fail, not permanent);
        once the provider cannot be reached, the groups not yet embedded are deferred uncounted
        without further calls. The LeaseKeeper renews the whole batch's leases meanwhile."""
        outcome = Outcome()
        todo = [jobs]  # a stack: the first half is embedded, or split further, before the second
        while todo:
            group = todo.pop()
            if outcome.unreachable is not None:
                outcome.deferred.extend(group)
                continue
            outcome.calls += 1
            try:
                vectors = await self._embed_with_retries([j["content"] for j in group], provider or self.provider)
            except PermanentProviderError as exc:
                if exc.per_input and len(group) > 1:
                    half = (len(group) + 1) // 2
                    todo += [group[half:], group[:half]]
                    outcome.splits += 1
                    metrics.BATCH_SPLITS.inc()
                    log.info("permanent error for a batch; splitting it", jobs=len(group), error=str(exc)[:300])
                    continue
                outcome.dead.append((group, str(exc)))
            except TransientProviderError as exc:
                if not exc.reached:
                    outcome.unreachable = exc
                    outcome.deferred.extend(group)
                else:
                    outcome.retry.append((group, f"gave up after {self.settings.max_retries} tries: {exc}"))
            else:
                outcome.embedded.extend(zip(group, vectors, strict=True))
        if outcome.splits:
            log.warning(
                "batch split to isolate inputs the provider refuses",
                jobs=len(jobs),
                provider_calls=outcome.calls,
                dead=sum(len(g) for g, _ in outcome.dead),
                embedded=len(outcome.embedded),
            )
        return outcome

    async def _embed_with_retries(self, texts: list[str], provider: Provider | None = None) -> np.ndarray:
        async for attempt in _retrying(self.settings.max_retries, self.settings.lease_seconds):
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    log.info("retrying provider", attempt=attempt.retry_state.attempt_number)
                return await (provider or self.provider).embed(texts)
        raise AssertionError("unreachable")

    async def _complete(self, embedded: list[tuple[dict, np.ndarray]], started: float, keeper: LeaseKeeper) -> None:
        # The keeper renews while a database fault delays the completion, which is retried until the
        # database answers (or SIGTERM). It is one statement (all or nothing) that stores only jobs
        # whose lease_id is still this claim's: a retry after a lost answer, or after the lease
        # expired and another worker re-claimed the job, stores nothing twice (lease_lost); a lease
        # that expired during the outage but was not re-claimed yet is still completed.
        # One statement per model (the model name is stored with the active model's vectors).
        by_model: dict[str, list[tuple[dict, np.ndarray]]] = {}
        for job, vector in embedded:
            by_model.setdefault(self.model_label(job), []).append((job, vector))
        rows: list[dict] = []
        jobs = [j for j, _ in embedded]
        try:
            for model, pairs in by_model.items():
                rows += await self._db(
                    "complete",
                    "complete_embedding_jobs",
                    many=True,
                    **_leases([j for j, _ in pairs]),
                    embeddings=[_vector(v) for _, v in pairs],
                    model=model,
                )
        finally:
            await keeper.stop()
        # the batch's audit rows of a chain someone held at its commit waited for it: seal those now
        await self._db("seal", "audit_seal_pending", max_seals=1000)
        for row in rows:
            metrics.JOBS.labels(row["outcome"]).inc()
        self.done += sum(r["outcome"].startswith("stored") for r in rows)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        log.debug("batch stored", jobs=len(jobs), stale=sum(r["outcome"] == "stale" for r in rows))

    async def _fail(self, jobs: list[dict], error: str, *, permanent: bool) -> None:
        log.warning("embedding failed", jobs=len(jobs), permanent=permanent, error=error)
        for j in jobs:
            row = await self._db(
                "fail",
                "fail_embedding_job",
                memory_id=j["memory_id"],
                lease_id=j["lease_id"],
                error=error,
                permanent=permanent,
            )
            metrics.JOBS.labels(row["outcome"]).inc()
        self.failed += len(jobs)

    async def _defer(self, jobs: list[dict], error: str) -> None:
        """The provider could not be reached: the jobs go back uncounted, to wait 5 s doubling to 300 s."""
        self._unreachable += 1
        delay = min(300.0, 5.0 * 2 ** (self._unreachable - 1))
        metrics.PROVIDER_UNREACHABLE.inc()
        log.warning("provider unreachable; batch deferred, attempt not counted", jobs=len(jobs), delay_s=delay, error=error)
        row = await self._db(
            "defer",
            "defer_embedding_jobs",
            **_leases(jobs),
            error=error,
            delay_seconds=delay,
        )
        metrics.JOBS.labels("deferred").inc(row["deferred"])

    async def _release(self, jobs: list[dict]) -> None:
        try:
            await self._db("release", "release_embedding_jobs", many=True, **_leases(jobs))
        except db.DatabaseUnavailable as exc:
            log.warning("batch not released (database unavailable); its leases expire", jobs=len(jobs), error=str(exc))
            return
        log.info("released batch on shutdown", jobs=len(jobs))


def _leases(jobs: list[dict]) -> dict[str, list]:
    """The claimed jobs as the parallel arrays complete, renew and release take."""
    return {"memory_ids": [j["memory_id"] for j in jobs], "lease_ids": [j["lease_id"] for j in jobs]}


def _vector(v: np.ndarray) -> np.ndarray:
    """A vector as the pool's connections send it: float32 in pgvector's binary format (register_vector_async),
    the values the ledger stores (real), without writing and parsing 384 numbers as text."""
    return np.ascontiguousarray(v, dtype=np.float32)
