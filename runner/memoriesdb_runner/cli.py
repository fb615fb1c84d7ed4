"""memoriesdb: the runner's command line. Commands only: the work is done by the library modules
(service, status, ingest, search, admin, demo); this file parses options, prints and sets the exit code."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import click
import psycopg
import pydantic
from rich.console import Console

from . import admin, reindex
from . import models as model_registry
from . import status as status_report
from . import verify_audit as audit_check
from .anchor import anchor_once, generate_key
from .checkpoint_store import open_store
from .demo import run_demo
from .errors import ConfigurationError, RunnerError, ledger_error
from .import_embeddings import MAX_BATCH, ImportResult, import_file
from .ingest import IngestResult, ingest_file
from .logs import configure
from .safety import plain_text, read_api_key, safe_text
from .search import print_results, search_text
from .service import run_workers
from .settings import Settings, load_settings

console = Console()


def one_line(exc: BaseException) -> str:
    """An error as one line: what went wrong, no traceback (psycopg and pydantic errors span lines)."""
    if isinstance(exc, psycopg.Error):
        exc = ledger_error(exc)
    if isinstance(exc, pydantic.ValidationError):
        return "; ".join(
            f"invalid setting {'.'.join(map(str, e['loc']))} (MEMORIESDB_{'_'.join(map(str, e['loc'])).upper()}): {e['msg']}"
            for e in exc.errors()
        )
    text = str(exc) or type(exc).__name__
    return plain_text(" ".join(part.strip() for part in text.splitlines() if part.strip()))


class Commands(click.Group):
    """Every error a user can cause or meet (configuration, connection, the ledger's refusals, files)
    ends the command with one line on stderr and exit code 1, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (RunnerError, psycopg.Error, pydantic.ValidationError, OSError) as exc:
            click.echo(f"error: {one_line(exc)}", err=True)
            ctx.exit(1)


@click.group(cls=Commands, context_settings={"auto_envvar_prefix": "MEMORIESDB", "show_default": True})
@click.option("--json", "json_logs", is_flag=True, default=None, help="JSON log lines (for containers).")
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING, ERROR.")
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Read MEMORIESDB_* settings from this file (yours, not writable by others). No .env is read otherwise.",
)
@click.pass_context
def main(ctx: click.Context, json_logs: bool | None, log_level: str | None, env_file: Path | None) -> None:
    """MemoriesDB runner: embedding worker, status, ingest, search, demo.

    Configuration comes from MEMORIESDB_* environment variables and, if named with --env-file or
    MEMORIESDB_ENV_FILE, an env file (see README)."""
    overrides = {k: v for k, v in {"json_logs": json_logs, "log_level": log_level}.items() if v is not None}
    settings = load_settings(env_file, **overrides)
    configure(settings.log_level, settings.json_logs)
    ctx.obj = settings


@main.command()
@click.argument("kind", type=click.Choice(["embed", "vindex", "anchor", "all"]))
@click.option("--until-empty", is_flag=True, help="Exit once the queue has no ready job (the anchor: after one checkpoint).")
@click.pass_obj
def worker(settings: Settings, kind: str, until_empty: bool) -> None:
    """Run workers until SIGTERM: embed (embedding queue), vindex (memory_graph refreshes), anchor (a signed
    checkpoint every MEMORIESDB_ANCHOR_INTERVAL_SECONDS), or all (the anchor only if MEMORIESDB_ANCHOR_KEY_FILE is set)."""
    _run(run_workers(settings, {"embed", "vindex", "anchor"} if kind == "all" else {kind}, until_empty=until_empty))


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


# --- checkpoints kept outside the database: anchor, anchor-keygen, verify-audit -----------


@main.command()
@click.pass_obj
def anchor(settings: Settings) -> None:
    """Take a checkpoint of the audit log (as the worker), sign it with MEMORIESDB_ANCHOR_KEY_FILE and
    append it to MEMORIESDB_ANCHOR_STORE (a directory, or s3://bucket/prefix)."""
    where, checkpoint = _run(anchor_once(settings))
    click.echo(
        f"{plain_text(where)}: root {plain_text(checkpoint['root'])}, {len(checkpoint['chains'])} chains, "
        f"{plain_text(checkpoint['audit_rows'])} audit rows"
    )


@main.command("anchor-keygen")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def anchor_keygen(path: Path) -> None:
    """Write a new Ed25519 signing key to PATH (PEM, mode 600) and its public key to PATH.pub; never
    overwrites. Keep PATH away from the database's host and administrators; give PATH.pub to auditors."""
    pub, kid = generate_key(path)
    click.echo(f"private key: {path} (mode 600)\npublic key:  {pub}\nkey id:      {kid}")


@main.command("verify-audit")
@click.option(
    "--checkpoints",
    "location",
    help="The checkpoint store: a directory or s3://bucket/prefix (default: MEMORIESDB_ANCHOR_STORE).",
)
@click.option(
    "--public-key",
    "public_key_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A public key (PEM) checkpoints may be signed with; repeat for rotated keys "
    "(default: MEMORIESDB_ANCHOR_PUBLIC_KEY_FILE, else MEMORIESDB_ANCHOR_KEY_FILE's).",
)
@click.option(
    "--recompute",
    is_flag=True,
    help="Call none of the ledger's functions: read the audit log with SELECTs and recompute every hash here "
    "(for a server whose superuser you do not trust: it could have replaced the verifying functions).",
)
@click.pass_obj
def verify_audit(settings: Settings, location: str | None, public_key_files: tuple[Path, ...], recompute: bool) -> None:
    """Check the audit log, and every stored checkpoint: its signature, its Merkle root, that the log (over
    MEMORIESDB_AUDITOR_DSN) still holds what it committed to, and that it undoes no checkpoint before it.
    Exit code 0: all verified; 3: the log or a checkpoint failed; 1: could not verify (configuration,
    connection, no checkpoints); 2: bad usage."""
    location = location or settings.anchor_store
    if not location:
        raise ConfigurationError("say where the checkpoints are: --checkpoints DIR (or MEMORIESDB_ANCHOR_STORE)")
    keys = audit_check.public_keys(settings, public_key_files)
    store = open_store(location, s3_endpoint_url=settings.anchor_s3_endpoint_url)
    if not audit_check.run(settings, store, keys, console, recompute=recompute).ok:
        sys.exit(3)


WHY_NOT = {
    "not_dead": "not dead (its job is queued or being embedded)",
    "no_job": "no job (embedded already, forgotten, or no such memory)",
}


@main.command()
@click.argument("ids", nargs=-1, type=click.UUID, metavar="[ID]...")
@click.option("--all", "all_", is_flag=True, help="Put back every dead job.")
@click.option("--model", default=None, metavar="NAME", help="Only the dead jobs of embedding model NAME (alone: all of them).")
@click.pass_obj
def requeue(settings: Settings, ids: tuple, all_: bool, model: str | None) -> None:
    """Put dead embedding jobs back in the queue: those of the memories ID..., or every one (--all);
    with --model NAME only that model's (`--model NAME` alone: every dead job of NAME).

    A job is dead after a permanent provider error or its last allowed attempt (`status` lists them
    with their model and error); back in the queue it starts again from attempt 0. Prints how many
    were put back, and for each ID that was not, why. Exit code 2 if any ID was not requeued, 1 for
    an unknown or retired model."""
    if all_ and ids or not (all_ or ids or model):
        raise click.UsageError("name the memories whose dead jobs go back (ID...) or give --all, not both (or --model NAME)")
    result = _run(status_report.requeue(settings, None if all_ or not ids else list(ids), model))
    click.echo(f"requeued {result['requeued']} dead job{'' if result['requeued'] == 1 else 's'}")
    for row in result["not_requeued"]:
        click.echo(f"{row['memory_id']}: not requeued: {WHY_NOT.get(row['outcome'], row['outcome'])}", err=True)
    if result["not_requeued"]:
        sys.exit(2)


# --- the model registry: several embedding models side by side -----------------------

PROVIDERS = click.Choice(["ollama", "openai", "local", "configured"])


@main.group()
def models() -> None:
    """Embedding models side by side: add one (it fills in the background), follow it (status,
    reembed --wait), activate it once complete (search switches atomically), pause, resume, retire."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def models_list(settings: Settings, as_json: bool) -> None:
    """Every registered model: provider, dimension, state, done/total, jobs."""
    rows = _run(model_registry.progress(settings))
    if as_json:
        click.echo(json.dumps(rows, default=str, indent=2))
    else:
        model_registry.show(rows, console)


@models.command("add")
@click.argument("name")
@click.option("--provider", type=PROVIDERS, required=True, help="Which runner provider embeds with it (NAME is its model).")
@click.option("--dim", "dimension", type=int, required=True, help="The model's vector dimension (at most 2000).")
@click.pass_obj
def models_add(settings: Settings, name: str, provider: str, dimension: int) -> None:
    """Register model NAME: it starts filling, a job per memory, served by the running workers."""
    row = _run(model_registry.call(settings, "add_model", name=name, provider=provider, dimension=dimension))
    click.echo(f"model {plain_text(name)} added: {row['jobs']} memories to embed (follow with: memoriesdb reembed --wait)")


def _model_command(sql_name: str, done: str):
    @click.argument("name")
    @click.pass_obj
    def command(settings: Settings, name: str) -> None:
        row = _run(model_registry.call(settings, sql_name, name=name))
        click.echo(done.format(name=plain_text(name), **{k: plain_text(str(v)) for k, v in row.items()}))

    return command


models.command("activate", help="Make NAME the model search uses, atomically; refused until it is complete.")(
    _model_command("activate_model", "model {name} is active ({memories} memories; {previous} is paused)")
)
models.command("pause", help="Stop the workers from embedding with filling model NAME (its jobs keep queueing).")(
    _model_command("pause_model", "model {name}: {state}")
)
models.command("resume", help="Let a paused model NAME fill again.")(_model_command("resume_model", "model {name}: {state}"))
models.command("retire", help="Drop model NAME's vectors, index and jobs (not the active model).")(
    _model_command("retire_model", "model {name} retired: {vectors} vectors and {jobs} jobs dropped")
)


@models.command("reindex")
@click.argument("name")
@click.option(
    "--maintenance-work-mem", metavar="SIZE", help="Memory for the build (e.g. 2GB): a graph that fits builds far faster."
)
@click.pass_obj
def models_reindex(settings: Settings, name: str, maintenance_work_mem: str | None) -> None:
    """Rebuild model NAME's HNSW index with today's search_hnsw_m and search_hnsw_ef_construction (an
    index keeps what it was built with), searches and writes going on: a copy is built concurrently,
    then takes the old one's place. As the deployer (MEMORIESDB_ADMIN_DSN). Interrupted, the same
    command resumes. Then run `memoriesdb calibrate-search` for the active model."""
    try:
        out = _run(reindex.rebuild(settings, name, console, maintenance_work_mem))
    except SystemExit as stop:
        if stop.code == 130:
            click.echo("interrupted: run the same command again to resume (a half-built copy is built again)", err=True)
        raise
    size = f"{out['bytes'] / 2**20:.0f} MB" if out["bytes"] is not None else "no index"
    click.echo(f"model {plain_text(name)}: index rebuilt in {out['seconds']:.1f} s ({size}; {plain_text(out['options'])})")


@main.command("calibrate-search")
@click.option("--samples", type=click.IntRange(1, 1000), default=50, show_default=True, help="Stored vectors used as queries.")
@click.option("--target", type=click.FloatRange(0, 1, min_open=True), default=0.95, show_default=True, help="recall@10 to reach.")
@click.option("--dry-run", is_flag=True, help="Measure and show, but set neither setting.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def calibrate_search(settings: Settings, samples: int, target: float, dry_run: bool, as_json: bool) -> None:
    """Measure the active model's HNSW index on this database's own vectors (its nearest 10 against an exact
    scan's) and set the two settings search() plans by: search_ef_search, the smallest of 40 up to 1000
    that reaches --target, then, with it, search_hnsw_min_fraction, the smallest share of the table (0.3
    down to 0.001, picked by memory id) at which the index plan still reaches it. Run it after activating
    a model or when the table has grown a lot (each sample is an exact scan of the active model's vectors
    per step). Exit code 2 when even the largest ef_search misses the target."""
    apply = not dry_run
    rows = _run(model_registry.call(settings, "calibrate_search", many=True, samples=samples, target=target, apply=apply))
    ef = next(r for r in rows if r["chosen"])
    fraction = {"samples": samples, "target": target, "apply": apply, "ef_search": ef["ef_search"]}
    shares = _run(model_registry.call(settings, "calibrate_search_fraction", many=True, **fraction))
    if as_json:
        click.echo(json.dumps({"ef_search": rows, "min_fraction": shares}, default=str, indent=2))
    else:
        model_registry.show_calibration(rows, target, apply, console)
        model_registry.show_fraction_calibration(shares, target, apply, console)
    if ef["recall"] < target:
        sys.exit(2)


@main.command()
@click.argument("names", nargs=-1, metavar="[MODEL]...")
@click.option("--wait", is_flag=True, help="Show a progress bar per model until it has embedded every memory.")
@click.option("--timeout", type=float, default=None, help="With --wait: give up after this many seconds (exit code 3).")
@click.pass_obj
def reembed(settings: Settings, names: tuple, wait: bool, timeout: float | None) -> None:
    """Follow the re-embedding of MODEL... (default: every filling model). The running workers do the
    work (`memoriesdb worker embed`); this shows where it is, and with --wait waits for its end.
    Exit code 2 if jobs are dead at the end (`memoriesdb requeue --all` puts them back)."""
    if not wait:
        model_registry.show(model_registry.filling(_run(model_registry.progress(settings)), list(names)), console)
        return
    try:
        rows = model_registry.reembed_with_bar(settings, list(names), console, timeout)
    except TimeoutError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(3)
    if any(r["dead"] for r in rows):
        click.echo("some jobs are dead: see memoriesdb status; put them back with memoriesdb requeue --all", err=True)
        sys.exit(2)


@main.command("import-embeddings")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--model", required=True, help="The registered model the vectors come from (memoriesdb models list).")
@click.option("--batch", type=click.IntRange(1, MAX_BATCH), default=500, help="Rows per call (one transaction).")
@click.pass_obj
def import_embeddings(settings: Settings, file: Path, model: str, batch: int) -> None:
    """Store vectors you already have: FILE is JSONL (or Parquet) of memory_id, content_hash (hex SHA-256
    of the content) or text (the content), and embedding (a list of numbers).

    A row is stored only where the memory's current content has that hash (a vector of an older
    content is refused: hash_mismatch); its queued job for the model is done then, and for the active
    model search uses it at once. Prints the rows stored and the rows rejected per reason, with the
    line of the first few. Exit code 2 if any row was rejected, 1 on an error (no such file, unknown
    or retired model)."""
    result = ImportResult()
    try:
        _run(import_file(settings, file, model, batch, console=console, result=result))
    except SystemExit as stop:
        if stop.code == 130:
            click.echo(f"interrupted: {result.stored} stored so far (stored rows stay; a re-run stores them again)", err=True)
        raise
    for line, why in sorted(result.examples):
        console.print(f"  line {line}: {safe_text(why)}", highlight=False, soft_wrap=True)
    if result.rejected_total > len(result.examples):
        console.print(f"  ... and {result.rejected_total - len(result.examples)} more rejected rows", highlight=False)
    reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(result.rejected.items()))
    console.print(
        f"{safe_text(file)}: {result.read} read, {result.stored} stored, {result.rejected_total} rejected"
        + (f" ({reasons})" if reasons else ""),
        highlight=False,
        soft_wrap=True,
    )
    if result.rejected_total:
        sys.exit(2)


# --- user-facing commands: ingest, search ------------------------------------------

user_options = [
    click.option(
        "--api-key-file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Read the API key from this file (mode 600: refused if group or others may read it).",
    ),
    click.option("--api-key-stdin", is_flag=True, help="Read the API key from the first line of standard input."),
    click.option(
        "--api-key",
        "api_key_option",
        allow_from_autoenv=False,
        help="Discouraged: visible to every local user in the process list. Use MEMORIESDB_API_KEY or the options above.",
    ),
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


def _who(settings: Settings, api_key_file: Path | None, api_key_stdin: bool, api_key_option: str | None, user_id):
    """(API key, user id) from the options and MEMORIESDB_API_KEY; one of them is required."""
    env_key = settings.api_key.get_secret_value() if settings.api_key else None
    key = read_api_key(option=api_key_option, from_stdin=api_key_stdin, file=api_key_file, env=env_key)
    if not (key or user_id):
        raise click.UsageError("say who you are: MEMORIESDB_API_KEY, --api-key-file, --api-key-stdin or --user")
    return key, user_id


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_user
@click.option("--batch", default=500, help="Lines per transaction.")
@click.option("--source", help="Name of the source in each line's idempotency key (default: the file's absolute path).")
@click.pass_obj
def ingest(settings: Settings, file: Path, api_key_file, api_key_stdin, api_key_option, user_id, batch: int, source) -> None:
    """Remember every line of FILE (JSONL with content/metadata, or plain text) as the user.

    Streams the file in batches; reports each bad line (number, reason) and goes on; stores each line
    at most once (a re-run, or a run after Ctrl-C, skips the lines already stored). Exit code 2 if a
    line was bad, 130 if interrupted."""
    key, user_id = _who(settings, api_key_file, api_key_stdin, api_key_option, user_id)
    result = IngestResult()
    try:
        _run(ingest_file(settings, file, key, user_id, batch, console=console, source=source, result=result))
    except SystemExit as stop:
        if stop.code == 130:
            click.echo(
                f"interrupted: {result.stored} stored, {result.skipped} already stored, {len(result.bad)} bad so far; "
                "run the same command again to resume (stored lines are skipped)",
                err=True,
            )
        raise
    for n, why in result.bad[:100]:
        console.print(f"  line {n}: {safe_text(why)}", highlight=False, soft_wrap=True)
    if len(result.bad) > 100:
        console.print(f"  ... and {len(result.bad) - 100} more bad lines")
    console.print(
        f"{safe_text(file)}: {result.stored} stored, {result.skipped} already stored, {len(result.bad)} bad",
        highlight=False,
        soft_wrap=True,
    )
    if result.bad:
        sys.exit(2)


@main.command()
@click.argument("text")
@with_user
@click.option("-k", default=10, help="How many results.")
@click.option("--filter", "filter_", default="{}", help='JSON filter, e.g. \'{"metadata": {"topic": "x"}}\'.')
@click.option("--no-cache", is_flag=True, help="Embed TEXT even if the query cache holds its vector (and cache nothing).")
@click.option(
    "--model", default=None, metavar="NAME", help="Search embedding model NAME's vectors (default: the active model's)."
)
@click.pass_obj
def search(
    settings: Settings,
    text: str,
    api_key_file,
    api_key_stdin,
    api_key_option,
    user_id,
    k: int,
    filter_: str,
    no_cache: bool,
    model: str | None,
) -> None:
    """Search the user's visible memories for TEXT: its vector from the user's query cache, else embedded
    with the configured provider (and cached). --model NAME: with a registered model's vectors (filling,
    paused or active), TEXT embedded by that model's provider and cached under that model."""
    key, user_id = _who(settings, api_key_file, api_key_stdin, api_key_option, user_id)
    try:
        filter_obj = json.loads(filter_)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--filter") from exc
    rows = _run(search_text(settings, text, key, user_id, k, filter_obj, use_cache=not no_cache, model=model))
    print_results(console, rows, f"search: {text!r}" + (f" (model {model})" if model else ""))


# --- deploy and demo ------------------------------------------------------------------


@main.command()
@click.option(
    "--dev-logins",
    is_flag=True,
    help="Also create the password-less development logins memoriesdb_runner (worker), memoriesdb_client (app), "
    "memoriesdb_server (backend) and memoriesdb_inspector (auditor) (only for a trust-auth development server; "
    "production creates its own logins, see README).",
)
@click.option(
    "--citus",
    is_flag=True,
    help="Deploy distributed by owner on a Citus cluster: the admin DSN names the coordinator's database, which must "
    "exist on every node with the citus extension and the workers registered (docs/citus.md).",
)
@click.pass_obj
def deploy(settings: Settings, dev_logins: bool, citus: bool) -> None:
    """sqitch deploy the ledger over the direct admin connection (idempotent); with --citus, distributed.

    The admin DSN reaches sqitch as libpq environment variables (PGHOST, PGPASSWORD, PGSSLMODE, ...),
    never on a command line."""
    try:
        click.echo((admin.deploy_citus(settings.admin_dsn) if citus else admin.deploy(settings.admin_dsn)).strip())
    except admin.DeployError as exc:
        click.echo(exc.output.rstrip(), err=True)  # what sqitch said; the one-line error follows
        raise
    if dev_logins:
        admin.ensure_local_logins(settings.admin_dsn)
        click.echo(f"development logins (no password): {', '.join(admin.LOCAL_LOGINS)}")


@main.command()
@click.pass_obj
def demo(settings: Settings) -> None:
    """The main job on the local defaults: deploy, two users, ingest, embed, search, isolation."""
    _run(run_demo(settings, console))


def _run(coro):
    try:
        return asyncio.run(coro)
    except (RunnerError, psycopg.Error, OSError) as exc:
        click.echo(f"error: {one_line(exc)}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
