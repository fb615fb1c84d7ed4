"""`memoriesdb verify-audit`: every stored checkpoint's signature and root, then the database's log
against it, as the auditor, with a progress bar and a report. What verify_audit_chain(checkpoint)
checks, split so that many checkpoints cost one pass over the log: verify_audit_chain() once (the
log in itself), verify_checkpoint(checkpoint) for each (one index lookup per chain)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from . import audit_recompute, db
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


@dataclass
class Report:
    log: Outcome  # the audit log in itself (verify_audit_chain())
    checkpoints: list[Outcome]  # oldest first

    @property
    def ok(self) -> bool:
        return self.log.ok and all(o.ok for o in self.checkpoints)


DETAILED = 3  # failed checkpoints whose every problem is listed (audit_problems: a pass over the log each)
SHOWN = 5  # problems shown per entry


async def verify_checkpoints(
    settings: Settings, store: CheckpointStore, keys: dict, progress=None, *, recompute: bool = False
) -> Report:
    """The log in itself, then one Outcome per stored checkpoint. Local checks first (a checkpoint
    that fails them is not sent to the database); the ledger's own refusals (MDBxx) are outcomes
    too. A lost connection ends the run (psycopg.OperationalError). recompute: no function of the
    ledger is called; the log is read with SELECTs and every hash recomputed here (audit_recompute)."""
    names = await asyncio.to_thread(store.names)
    if not names:
        raise ConfigurationError(f"no checkpoints in {store.location}")
    task = progress.add_task("verifying", total=len(names) + 1) if progress else None
    outcomes = []
    conn = await db.connect(settings.auditor_dsn)
    if recompute:
        async with conn:
            return await _recomputed(conn, store, names, keys, progress, task)
    async with conn:
        whole = await db.row(conn, "verify_audit_chain")
        if whole["ok"]:
            log_outcome = Outcome("the audit log itself", "ok", f"{whole['rows_checked']} rows, {whole['seals_checked']} seals")
            log_problems = set()
        else:
            found = await db.rows(conn, "audit_problems", checkpoint=None)
            log_outcome = Outcome("the audit log itself", "database", _lines(found))
            log_problems = {r["problem"] for r in found}
        if progress:
            progress.advance(task)
        detailed = 0
        for name in names:
            outcome = await _verify_one(conn, store, name, keys, log_problems if detailed < DETAILED else None)
            detailed += outcome.result == "database"
            outcomes.append(outcome)
            if progress:
                progress.advance(task)
    _check_growth(outcomes)
    return Report(log_outcome, outcomes)


async def _recomputed(conn, store: CheckpointStore, names: list[str], keys: dict, progress, task) -> Report:
    """verify-audit --recompute: the log recomputed here once, then each checkpoint's signature, root
    and chain heads against it; the database answers SELECTs only."""
    computed = await audit_recompute.fetch_and_recompute(conn)
    waiting = f", {computed.waiting} waiting for their seal" if computed.waiting else ""
    if computed.ok:
        log_outcome = Outcome(
            "the audit log itself (recomputed here)", "ok", f"{computed.rows} rows, {computed.seals} seals{waiting}"
        )
    else:
        found = [{"audit_id": i, "problem": p} for i, p in computed.problems]
        log_outcome = Outcome("the audit log itself (recomputed here)", "database", _lines(found))
    if progress:
        progress.advance(task)
    outcomes = []
    for name in names:
        try:
            checkpoint = check_record(await asyncio.to_thread(store.get, name), keys)
        except BadRecord as exc:
            outcomes.append(Outcome(name, exc.kind, str(exc)))
        except OSError as exc:
            outcomes.append(Outcome(name, "unreadable", str(exc)))
        else:
            found = computed.against(checkpoint)
            if found:
                outcomes.append(Outcome(name, "database", _lines([{"audit_id": None, "problem": p} for p in found]), checkpoint))
            else:
                outcomes.append(Outcome(name, "ok", f"{len(checkpoint['chains'])} chain heads", checkpoint))
        if progress:
            progress.advance(task)
    _check_growth(outcomes)
    return Report(log_outcome, outcomes)


def _lines(found: list[dict], skip: set[str] = frozenset()) -> str:
    problems = [
        f"{r['problem']} (audit row {r['audit_id']})" if r["audit_id"] is not None else r["problem"]
        for r in found
        if r["problem"] not in skip
    ]
    more = [f"and {len(problems) - SHOWN} more (memoriesdb.audit_problems() lists them)"] if len(problems) > SHOWN else []
    return "\n".join(problems[:SHOWN] + more)


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


async def _verify_one(conn, store: CheckpointStore, name: str, keys: dict, log_problems: set[str] | None) -> Outcome:
    """log_problems: the log's own problems, to leave out of the checkpoint's when every problem is
    listed; None: only the first problem (verify_checkpoint()'s), no further pass over the log."""
    try:
        checkpoint = check_record(await asyncio.to_thread(store.get, name), keys)
    except BadRecord as exc:
        return Outcome(name, exc.kind, str(exc))
    except OSError as exc:
        return Outcome(name, "unreadable", str(exc))
    try:
        row = await db.row(conn, "verify_checkpoint", checkpoint=Jsonb(checkpoint))
    except psycopg.Error as exc:
        if conn.broken or not (exc.sqlstate or "").startswith("MDB"):
            raise  # not about this checkpoint: the connection, or a ledger without the function
        return Outcome(name, "refused", str(ledger_error(exc)), checkpoint)
    if row["ok"]:
        return Outcome(name, "ok", f"{len(checkpoint['chains'])} chain heads", checkpoint)
    if log_problems is None:
        return Outcome(
            name,
            "database",
            f"{row['problem']}\n(the first problem; memoriesdb.audit_problems(checkpoint) lists all)",
            checkpoint,
        )
    # every problem of this checkpoint (a cut shows in several chains at once), less the log's own
    return Outcome(
        name,
        "database",
        _lines(await db.rows(conn, "audit_problems", checkpoint=Jsonb(checkpoint)), log_problems) or row["problem"],
        checkpoint,
    )


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


def run(settings: Settings, store: CheckpointStore, keys: dict, console: Console, *, recompute: bool = False) -> Report:
    """verify_checkpoints with a progress bar on console (shown while it runs), then the report."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        result = asyncio.run(verify_checkpoints(settings, store, keys, progress, recompute=recompute))
    report(result, store.location, console)
    return result


def report(result: Report, location: str, console: Console) -> None:
    """The log in itself, then one entry per checkpoint, oldest first: the result, the file, what was
    checked or what is wrong."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for o in [result.log, *result.checkpoints]:
        lines = [safe_text(line) for line in o.detail.split("\n") if line]
        cp = o.checkpoint  # None for one that failed its signature: its content is not the signer's
        if o.ok and cp:
            text = f"{safe_text(o.name)}  {safe_text(cp['audit_rows'])} audit rows, {lines[0]} present"
        elif o.ok:
            text = f"{safe_text(o.name)}  {lines[0]} verified"
        else:
            text = "\n".join([safe_text(o.name), *(f"- {line}" for line in lines)])
        grid.add_row(LABELS.get(o.result, safe_text(o.result)), text)
        if o is result.log:
            grid.add_row("", f"[bold]checkpoints in {safe_text(location)}[/]")
    console.print(grid, highlight=False)
    outcomes = result.checkpoints
    bad = [o for o in outcomes if not o.ok]
    if not result.log.ok:
        console.print("[red bold]the audit log itself does not verify[/]")
    if bad:
        console.print(f"[red bold]{len(bad)} of {len(outcomes)} checkpoints failed[/]")
    elif result.ok:
        newest = max((o.checkpoint for o in outcomes), key=lambda c: str(c.get("taken_at")))
        taken, rows = safe_text(newest.get("taken_at")), safe_text(newest.get("audit_rows"))
        console.print(
            f"[green bold]all {len(outcomes)} checkpoints verified[/]: signatures, roots, and the log holds what each "
            f"committed to (newest taken at {taken}, {rows} audit rows)"
        )
