"""memoriesdb: the runner's command line. Commands only: the work is done by the library modules
(service, status, ingest, search, admin, demo); this file parses options, prints and sets the exit code."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path

import click
import psycopg
from rich.console import Console

from . import admin
from . import status as status_report
from .demo import run_demo
from .errors import RunnerError, ledger_error
from .ingest import ingest_file
from .logs import configure
from .search import print_results, search_text
from .service import run_workers
from .settings import Settings

console = Console()


@click.group(context_settings={"auto_envvar_prefix": "MEMORIESDB", "show_default": True})
@click.option("--json", "json_logs", is_flag=True, default=None, help="JSON log lines (for containers).")
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING, ERROR.")
@click.pass_context
def main(ctx: click.Context, json_logs: bool | None, log_level: str | None) -> None:
    """MemoriesDB runner: embedding worker, status, ingest, search, demo.

    Configuration comes from MEMORIESDB_* environment variables and .env (see README)."""
    overrides = {k: v for k, v in {"json_logs": json_logs, "log_level": log_level}.items() if v is not None}
    settings = Settings(**overrides)
    configure(settings.log_level, settings.json_logs)
    ctx.obj = settings


@main.command()
@click.argument("kind", type=click.Choice(["embed", "vindex", "all"]))
@click.option("--until-empty", is_flag=True, help="Exit once the queue has no ready job.")
@click.pass_obj
def worker(settings: Settings, kind: str, until_empty: bool) -> None:
    """Run queue workers until SIGTERM: embed (embedding queue), vindex (memory_graph refreshes), or all."""
    _run(run_workers(settings, {"embed", "vindex"} if kind == "all" else {kind}, until_empty=until_empty))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def status(settings: Settings, as_json: bool) -> None:
    """Queue depths, dead jobs with their errors, embeddings per model, last refresh, refused attempts."""
    data = _run(status_report.collect(settings))
    if as_json:
        click.echo(json.dumps(data, default=str, indent=2))
    else:
        status_report.show(data, console)


# --- user-facing commands: ingest, search ------------------------------------------

user_options = [
    click.option("--api-key", envvar="MEMORIESDB_API_KEY", help="Act as the user this key belongs to."),
    click.option(
        "--user",
        "user_id",
        type=click.UUID,
        help="Act as this user id (over MEMORIESDB_BACKEND_DSN, a backend login vouching for it).",
    ),
]


def with_user(f):
    for option in reversed(user_options):
        f = option(f)
    return f


def _require_user(api_key: str | None, user_id: uuid.UUID | None) -> None:
    if not (api_key or user_id):
        raise click.UsageError("say who you are: --api-key (or MEMORIESDB_API_KEY) or --user")


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_user
@click.option("--batch", default=500, help="Lines per transaction.")
@click.pass_obj
def ingest(settings: Settings, file: Path, api_key: str | None, user_id: uuid.UUID | None, batch: int) -> None:
    """Remember every line of FILE (JSONL with content/metadata, or plain text) as the user."""
    _require_user(api_key, user_id)
    stored, rejected = _run(ingest_file(settings, file, api_key, user_id, batch, console=console))
    click.echo(f"remembered {stored} memories from {file}; {len(rejected)} lines rejected")
    for n, err in rejected[:50]:
        click.echo(f"  line {n}: {err}")
    if len(rejected) > 50:
        click.echo(f"  ... and {len(rejected) - 50} more")
    if rejected:
        sys.exit(2)


@main.command()
@click.argument("text")
@with_user
@click.option("-k", default=10, help="How many results.")
@click.option("--filter", "filter_", default="{}", help='JSON filter, e.g. \'{"metadata": {"topic": "x"}}\'.')
@click.pass_obj
def search(settings: Settings, text: str, api_key: str | None, user_id: uuid.UUID | None, k: int, filter_: str) -> None:
    """Embed TEXT with the configured provider and search the user's visible memories."""
    _require_user(api_key, user_id)
    rows = _run(search_text(settings, text, api_key, user_id, k, json.loads(filter_)))
    print_results(console, rows, f"search: {text!r}")


# --- deploy and demo ------------------------------------------------------------------


@main.command()
@click.option(
    "--logins/--no-logins", default=True, help="Create the local logins memoriesdb_runner, _client (app) and _server (backend)."
)
@click.pass_obj
def deploy(settings: Settings, logins: bool) -> None:
    """sqitch deploy the ledger over the direct admin connection (idempotent)."""
    click.echo(admin.deploy(settings.admin_dsn).strip())
    if logins:
        admin.ensure_local_logins(settings.admin_dsn)


@main.command()
@click.pass_obj
def demo(settings: Settings) -> None:
    """The main job on the local defaults: deploy, two users, ingest, embed, search, isolation."""
    _run(run_demo(settings, console))


def _run(coro):
    try:
        return asyncio.run(coro)
    except (RunnerError, psycopg.Error) as exc:
        err = ledger_error(exc) if isinstance(exc, psycopg.Error) else exc
        click.echo(f"error: {err}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
