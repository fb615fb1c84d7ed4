"""Runner configuration: environment variables (MEMORIESDB_*) and, only when named, an env file.

No .env is read from the current directory: a file there may belong to, or be writable by, someone
else, and it names the DSNs the API key and the search text are sent to. An env file is read only
when given (--env-file or MEMORIESDB_ENV_FILE), owned by the user (or root) and not writable by
group or others; environment variables win over it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEMORIESDB_", env_file=None, extra="ignore")

    # The worker's connection (role memoriesdb_worker), through PgBouncer (transaction pooling).
    dsn: str = "postgresql://memoriesdb_runner@127.0.0.1:6432/memoriesdb"
    # A direct connection for LISTEN, which does not work through PgBouncer transaction pooling.
    # Unset: MEMORIESDB_DSN with the port of the PostgreSQL behind PgBouncer (listen_port).
    listen_dsn: str | None = None
    listen_port: int = 5432
    # Connection for the user-facing commands (ingest, search, demo) acting by API key: role memoriesdb_app
    # (untrusted: a context only from authenticate()), through PgBouncer.
    app_dsn: str = "postgresql://memoriesdb_client@127.0.0.1:6432/memoriesdb"
    # Connection of a trusted backend (role memoriesdb_backend): creates users and acts by user id (--user),
    # vouching for it; the demo provisions its users through it. Through PgBouncer.
    backend_dsn: str = "postgresql://memoriesdb_server@127.0.0.1:6432/memoriesdb"
    # The auditor's connection (role memoriesdb_auditor), direct: `verify-audit` checks the log against
    # each stored checkpoint. The development login memoriesdb_inspector is made by `deploy --dev-logins`.
    auditor_dsn: str = "postgresql://memoriesdb_inspector@127.0.0.1:5432/memoriesdb"
    # Superuser connection the demo deploys with (sqitch), direct.
    admin_dsn: str = "postgresql://postgres@127.0.0.1:5432/memoriesdb"

    # PgBouncer's admin console, read by `memoriesdb status` for pool utilisation when reachable.
    pgbouncer_admin_dsn: str = "postgresql://postgres@127.0.0.1:6432/pgbouncer"

    # The user `ingest` and `search` act as (MEMORIESDB_API_KEY); never put it on a command line.
    api_key: SecretStr | None = None

    provider: Literal["local", "ollama", "openai"] = "local"
    model: str | None = None  # default per provider: all-MiniLM-L6-v2 / all-minilm / text-embedding-3-small
    ollama_url: str = "http://127.0.0.1:11434"
    openai_url: str = "https://api.openai.com/v1"
    openai_api_key: SecretStr | None = None
    request_timeout: float = 60.0

    batch_size: int = 32  # at most the ledger's embedding_max_batch_size (256 by default)
    # A claimed job is another worker's this long after the worker's last sign of life: the worker
    # renews its batch's leases every lease_seconds/3 while it embeds. At most the ledger's
    # embedding_max_lease_seconds (900 by default).
    lease_seconds: int = 300
    concurrency: int = 1
    poll_seconds: float = 5.0
    max_retries: int = 4  # transient provider errors retried in-process before the job is failed
    vindex_debounce_seconds: float = 2.0
    # SIGTERM mid-batch: how long the provider may still answer before the batch is handed back
    # (the whole stop stays under 5 s: this, one release statement of at most 1 s, closing the pool).
    shutdown_grace_seconds: float = 1.5
    # How long a database call waits for a connection (and each connection attempt may take) before
    # it counts as a fault and is retried with backoff (0.5 s doubling to 10 s; never fatal).
    db_timeout_seconds: float = 5.0

    # Checkpoints kept outside the database (`memoriesdb anchor`, and `worker all` every interval):
    # the Ed25519 signing key (`memoriesdb anchor-keygen`; mode 600, never shown to the database;
    # unset: `worker all` does not anchor), where signed checkpoints go (a directory, or
    # s3://bucket/prefix with boto3's credentials and, for a server other than AWS, the endpoint URL).
    anchor_key_file: Path | None = None
    anchor_store: str | None = None
    anchor_s3_endpoint_url: str | None = None
    anchor_interval_seconds: float = Field(default=600.0, gt=0)
    # The public key(s) verify-audit checks signatures with when --public-key is not given
    # (unset: the public key of anchor_key_file).
    anchor_public_key_file: Path | None = None

    # On a Citus cluster: how often `memoriesdb worker` measures the shards' rows for search()'s plan choice
    # (memoriesdb.citus_refresh_search_statistics(); about 0.3 s for 32 shards). Not used on a single node.
    citus_statistics_interval_seconds: float = Field(default=600.0, gt=0)

    metrics_port: int = 0  # 0: no metrics/health server
    # Where /metrics, /healthz and /readyz listen; 0.0.0.0 only when something outside must scrape
    # them (a container's health check runs inside it and needs no more than 127.0.0.1).
    metrics_host: str = "127.0.0.1"
    # /healthz answers 503 when a worker loop has not beaten for this long (a wedged loop).
    health_stale_seconds: float = 60.0
    log_level: str = "INFO"
    json_logs: bool = False

    @property
    def listen(self) -> str:
        if self.listen_dsn:
            return self.listen_dsn
        from psycopg.conninfo import make_conninfo

        return make_conninfo(self.dsn, port=str(self.listen_port))


def load_settings(env_file: Path | str | None = None, **overrides) -> Settings:
    """Settings from the environment, and from env_file (else $MEMORIESDB_ENV_FILE) if one is named,
    after checking that no other local user could have written it (ConfigurationError)."""
    from .safety import check_private_file

    path = env_file or os.environ.get("MEMORIESDB_ENV_FILE") or None
    if path is None:
        return Settings(**overrides)
    check_private_file(Path(path), what="env file", secret=False)
    return Settings(_env_file=path, **overrides)
