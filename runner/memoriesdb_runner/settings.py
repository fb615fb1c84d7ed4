"""Runner configuration: environment variables (MEMORIESDB_*) and an optional .env file."""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEMORIESDB_", env_file=".env", extra="ignore")

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
    # Superuser connection the demo deploys with (sqitch), direct.
    admin_dsn: str = "postgresql://postgres@127.0.0.1:5432/memoriesdb"

    # PgBouncer's admin console, read by `memoriesdb status` for pool utilisation when reachable.
    pgbouncer_admin_dsn: str = "postgresql://postgres@127.0.0.1:6432/pgbouncer"

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

    metrics_port: int = 0  # 0: no metrics/health server
    log_level: str = "INFO"
    json_logs: bool = False

    @property
    def listen(self) -> str:
        if self.listen_dsn:
            return self.listen_dsn
        from psycopg.conninfo import make_conninfo

        return make_conninfo(self.dsn, port=str(self.listen_port))
