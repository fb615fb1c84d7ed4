"""`memoriesdb verify-audit`: every stored checkpoint's signature and root, then the database's log
against it (verify_audit_chain(checkpoint), as the auditor), with a progress bar and a report."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from . import db
from .anchor import BadRecord, check_record, key_id, load_private_key, load_public_key, public_key_path, went_back
from .checkpoint_store import CheckpointStore
from .errors import ConfigurationError, ledger_error
from .safety import safe_text
from .settings import Settings


@dataclass
class Outcome:
    name: str
    result: str  # ok, unreadable, unknown key, bad signature, root mismatch, database, refused, went back
    detail: str = ""
    checkpoint: dict | None = None

    @property
    def ok(self) -> bool:
        return self.result == "ok"


def public_keys(settings: Settings, files: tuple[Path, ...] = ()) -> dict:
    """{key id: public key}: the files given, else MEMORIESDB_ANCHOR_PUBLIC_KEY_FILE, else the public
    key of MEMORIESDB_ANCHOR_KEY_FILE (its .pub beside it, or the private key itself)."""
    keys = [load_public_key(Path(p).expanduser()) for p in files]
    if not keys and settings.anchor_public_key_file:
        keys = [load_public_key(Path(settings.anchor_public_key_file).expanduser())]
    if not keys and settings.anchor_key_file:
        private = Path(settings.anchor_key_file).expanduser()
        pub = public_key_path(private)
        keys = [load_public_key(pub) if pub.exists() else load_private_key(private).public_key()]
    if not keys:
        raise ConfigurationError("no public key to check signatures with: --public-key FILE (the .pub anchor-keygen wrote)")
    return {key_id(k): k for k in keys}


async def verify_checkpoints(settings: Settings, store: CheckpointStore, keys: dict, progress=None) -> list[Outcome]:
    """One Outcome per stored checkpoint, oldest first. Local checks first (a checkpoint that fails
    them is not sent to the database); the ledger's own refusals (MDBxx) are outcomes too. A lost
    connection ends the run (psycopg.OperationalError)."""
    names = await asyncio.to_thread(store.names)
    if not names:
        raise ConfigurationError(f"no checkpoints in {store.location}")
    task = progress.add_task("verifying", total=len(names)) if progress else None
    outcomes = []
    conn = await db.connect(settings.auditor_dsn)
    async with conn:
        for name in names:
            outcomes.append(await _verify_one(conn, store, name, keys))
            if progress:
                progress.advance(task)
    _check_growth(outcomes)
    return outcomes


def _check_growth(outcomes: list[Outcome]) -> None:
    """Each signed checkpoint against the one taken before it (by its signed taken_at, the
    database's clock, so anchors on several hosts agree) of the same ledger: see went_back."""
    signed = sorted((o for o in outcomes if o.checkpoint is not None), key=lambda o: str(o.checkpoint.get("taken_at")))
    last: dict[str, dict] = {}  # ledger -> its latest checkpoint so far
    for o in signed:
        cp = o.checkpoint
        before = last.get(cp.get("ledger"))
        last[cp.get("ledger")] = cp
        behind = went_back(before, cp) if before is not None else []
        if behind:
            o.detail = "\n".join(behind if o.ok else [o.detail, *behind])
            o.result = "went back" if o.ok else o.result


async def _verify_one(conn, store: CheckpointStore, name: str, keys: dict) -> Outcome:
    try:
        checkpoint = check_record(await asyncio.to_thread(store.get, name), keys)
    except BadRecord as exc:
        return Outcome(name, exc.kind, str(exc))
    except OSError as exc:
        return Outcome(name, "unreadable", str(exc))
    try:
        row = await db.row(conn, "verify_audit_checkpoint", checkpoint=Jsonb(checkpoint))
    except psycopg.Error as exc:
        if conn.broken:
            raise
        return Outcome(name, "refused", str(ledger_error(exc)), checkpoint)
    if row["ok"]:
        return Outcome(name, "ok", f"{row['rows_checked']} rows, {row['seals_checked']} seals", checkpoint)
    # every problem, not only the first: a truncation shows in several chains at once
    found = await db.rows(conn, "audit_problems", checkpoint=Jsonb(checkpoint))
    problems = [f"{r['problem']} (audit row {r['audit_id']})" if r["audit_id"] is not None else r["problem"] for r in found] or [
        row["problem"]
    ]
    more = (
        [f"and {len(problems) - SHOWN} more (memoriesdb.audit_problems(checkpoint) lists them)"] if len(problems) > SHOWN else []
    )
    return Outcome(name, "database", "\n".join(problems[:SHOWN] + more), checkpoint)


SHOWN = 5  # problems shown per checkpoint


LABELS = {
    "ok": "[green]ok[/]",
    "unreadable": "[red]unreadable[/]",
    "unknown key": "[red]unknown key[/]",
    "bad signature": "[red]bad signature[/]",
    "root mismatch": "[red]root mismatch[/]",
    "database": "[red]log differs[/]",
    "refused": "[red]refused[/]",
    "went back": "[red]went back[/]",
}


def run(settings: Settings, store: CheckpointStore, keys: dict, console: Console) -> list[Outcome]:
    """verify_checkpoints with a progress bar on console (shown while it runs), then the report."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        outcomes = asyncio.run(verify_checkpoints(settings, store, keys, progress))
    report(outcomes, store.location, console)
    return outcomes


def report(outcomes: list[Outcome], location: str, console: Console) -> None:
    """One entry per checkpoint, oldest first: the result, the file, what was checked or what is wrong."""
    console.print(f"[bold]checkpoints in {safe_text(location)}[/]")
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for o in outcomes:
        lines = [safe_text(line) for line in o.detail.split("\n") if line]
        cp = o.checkpoint  # None for one that failed its signature: its content is not the signer's
        if o.ok:
            checked = f"{len(cp['chains'])} chains, {safe_text(cp['audit_rows'])} audit rows; checked {lines[0]}"
            text = f"{safe_text(o.name)}  {checked}"
        else:
            text = "\n".join([safe_text(o.name), *(f"- {line}" for line in lines)])
        grid.add_row(LABELS.get(o.result, safe_text(o.result)), text)
    console.print(grid, highlight=False)
    bad = [o for o in outcomes if not o.ok]
    if bad:
        console.print(f"[red bold]{len(bad)} of {len(outcomes)} checkpoints failed[/]")
    else:
        newest = outcomes[-1].checkpoint or {}
        taken, rows = safe_text(newest.get("taken_at")), safe_text(newest.get("audit_rows"))
        console.print(
            f"[green bold]all {len(outcomes)} checkpoints verified[/]: signatures, roots, and the log holds what each "
            f"committed to (newest taken at {taken}, {rows} audit rows)"
        )
