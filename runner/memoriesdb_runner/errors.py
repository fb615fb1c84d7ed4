"""The runner's exceptions; SQLSTATEs of the ledger mapped to them."""

from __future__ import annotations

import psycopg


class RunnerError(Exception):
    """Base of the runner's errors."""


class TransientProviderError(RunnerError):
    """Worth retrying: timeouts, connection errors, 5xx, 429. reached=False: the request never got to
    the provider (connection refused, DNS failure, connect timeout), so it is no attempt at the job."""

    def __init__(self, message: str, retry_after: float | None = None, reached: bool = True):
        super().__init__(message)
        self.retry_after = retry_after
        self.reached = reached


class PermanentProviderError(RunnerError):
    """Retrying will not help: unknown model, wrong dimension, bad request. per_input=True: the refusal
    may be about one of the inputs (HTTP 400, 413, 422, a missing, zero or NaN vector), so the worker
    splits the batch to find which; False: it is about the request as a whole (401, 403, 404: no
    key, no access, no such model), and every input of the batch would meet it."""

    def __init__(self, message: str, per_input: bool = True):
        super().__init__(message)
        self.per_input = per_input


class ConfigurationError(RunnerError):
    """The runner cannot start as configured (e.g. model dimension differs from the column)."""


class LedgerError(RunnerError):
    """An error the ledger raised on purpose (SQLSTATE MDBxx)."""

    def __init__(self, sqlstate: str, message: str, hint: str | None = None):
        super().__init__(f"{message} [{sqlstate}]" + (f" — {hint}" if hint else ""))
        self.sqlstate = sqlstate
        self.hint = hint


def ledger_error(exc: psycopg.Error) -> Exception:
    """Turn a psycopg error carrying a MemoriesDB SQLSTATE into a LedgerError."""
    diag = exc.diag
    if diag.sqlstate and diag.sqlstate.startswith("MDB"):
        return LedgerError(diag.sqlstate, diag.message_primary or str(exc), diag.message_hint)
    return exc
