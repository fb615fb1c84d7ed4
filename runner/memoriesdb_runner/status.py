"""Status (`memoriesdb status`): queue depths, dead jobs, embeddings per model, PgBouncer pools,
refused attempts and the last memory_graph refresh; collected as one dict, shown as tables."""

from __future__ import annotations

import uuid

import psycopg
from psycopg.rows import dict_row
from rich.console import Console
from rich.table import Table

from . import db
from .safety import safe_text
from .settings import Settings


async def collect(settings: Settings) -> dict:
    """Everything `status` shows, as JSON-ready data (pools: None when PgBouncer's console does not answer)."""
    conn = await db.connect(settings.dsn)
    async with conn:
        data = {
            "queue": await db.row(conn, "embedding_queue_status"),
            "health": await db.row(conn, "embedding_queue_health"),
            "dead": await db.rows(conn, "dead_embedding_jobs", max_rows=20, model=None),
            "models": await db.rows(conn, "embedding_models"),
            "registry": await db.rows(conn, "model_progress"),
            "vindexing": await db.row(conn, "vindexing_status"),
            "refusals_last_hour": await db.rows(conn, "access_refusals", since="1 hour"),
        }
    data["pools"] = await pgbouncer_pools(settings)
    return data


async def pgbouncer_pools(settings: Settings) -> list[dict] | None:
    """SHOW POOLS on PgBouncer's admin console (simple query protocol), or None if unreachable."""
    try:
        conn = await psycopg.AsyncConnection.connect(
            settings.pgbouncer_admin_dsn,
            autocommit=True,
            connect_timeout=2,
            cursor_factory=psycopg.AsyncClientCursor,
            row_factory=dict_row,
        )
        async with conn:
            pools = await db.rows(conn, "pgbouncer_pools")
    except psycopg.Error:
        return None
    return [p for p in pools if p["database"] != "pgbouncer"]


async def requeue(settings: Settings, memory_ids: list[uuid.UUID] | None, model: str | None = None) -> dict:
    """`memoriesdb requeue`: every dead job back in the queue (memory_ids None), or those of these
    memories; of one model only when model is named (MDB16 no such model, MDB31 retired).
    {"requeued": n, "not_requeued": [{"memory_id", "outcome"}, ...]}: outcome not_dead (queued or
    leased, not dead) or no_job (embedded already, forgotten, or no such memory; of that model)."""
    conn = await db.connect(settings.dsn)
    async with conn:
        if model is not None:
            rows = await db.rows(conn, "requeue_dead_model_embedding_jobs", memory_ids=memory_ids, model=model)
        elif memory_ids is None:
            return {"requeued": (await db.row(conn, "requeue_dead_embedding_jobs"))["requeued"], "not_requeued": []}
        else:
            rows = await db.rows(conn, "requeue_dead_embedding_jobs_by_id", memory_ids=memory_ids)
    return {
        "requeued": sum(r["outcome"] == "requeued" for r in rows),
        "not_requeued": [r for r in rows if r["outcome"] != "requeued"],
    }


def show(data: dict, console: Console) -> None:
    """The report as tables; every value from the database is escaped (safe_text): an error text a
    provider returned, a model name, is data, never Rich markup or terminal control."""
    q = data["queue"]
    console.print(
        f"[bold]embedding queue[/]: {q['pending']} pending, {q['leased']} leased, {q['dead']} dead"
        + (f"; oldest since {q['oldest_pending']:%Y-%m-%d %H:%M:%S}" if q["oldest_pending"] else "")
    )
    h = data.get("health") or {}
    if h.get("oldest_lease_at"):
        console.print(
            f"[bold]oldest lease[/]: claimed {_when(h['oldest_lease_at'])} ({_age(h['oldest_lease_age'])} ago) "
            f"by {safe_text(h['oldest_lease_holder'] or '?')}; {h['holders']} worker(s) hold leases"
        )
    if h.get("last_error"):
        console.print(f"[bold]last provider error[/] ({_when(h['last_error_at'])}): {safe_text(h['last_error'][:300])}")
    if data["dead"]:
        per_model = ", ".join(f"{safe_text(m['model'])} {m['dead']}" for m in data.get("registry") or [] if m["dead"])
        t = Table("memory", "model", "attempts", "dead since", "error", title="dead jobs (newest first)")
        for d in data["dead"]:
            t.add_row(
                str(d["memory_id"]), safe_text(d["model"]), str(d["attempts"]), _when(d["dead_at"]), safe_text(d["last_error"])
            )
        console.print(t)
        if per_model:
            console.print(f"[bold]dead jobs per model[/]: {per_model}", highlight=False)
        console.print(
            "put them back with [bold]memoriesdb requeue ID...[/], [bold]memoriesdb requeue --all[/]"
            " or one model's: [bold]memoriesdb requeue --model NAME[/]"
        )
    t = Table("model", "memories", "newest", title="embeddings per model")
    for m in data["models"]:
        t.add_row(safe_text(m["model"]), str(m["memories"]), _when(m["newest"]))
    console.print(t)
    if data.get("registry"):
        t = Table("model", "provider", "dim", "state", "progress", "pending", "dead", title="embedding models (registry)")
        for m in data["registry"]:
            pct = f" ({100 * m['done'] / m['total']:.0f}%)" if m["total"] else ""
            t.add_row(
                safe_text(m["model"]),
                safe_text(m["provider"]),
                str(m["dimension"]),
                m["state"],
                f"{m['done']}/{m['total']}{pct}",
                str(m["pending"]),
                str(m["dead"]),
            )
        console.print(t)
    if data["pools"] is None:
        console.print("[bold]pgbouncer[/]: admin console not reachable (MEMORIESDB_PGBOUNCER_ADMIN_DSN)")
    else:
        t = Table(
            "database",
            "user",
            "clients active",
            "clients waiting",
            "servers active",
            "servers idle",
            "max wait s",
            title="pgbouncer pools",
        )
        for p in data["pools"]:
            t.add_row(
                safe_text(p["database"]),
                safe_text(p["user"]),
                str(p["cl_active"]),
                str(p["cl_waiting"]),
                str(p["sv_active"]),
                str(p["sv_idle"]),
                str(p["maxwait"]),
            )
        console.print(t)
    refused = data["refusals_last_hour"]
    console.print(f"[bold]refused attempts, last hour[/]: {sum(r['attempts'] for r in refused)}")
    if refused:
        t = Table("function", "sqlstate", "attempts", "actors", "no context", "latest", title="refused attempts (access log)")
        for r in refused:
            t.add_row(
                safe_text(r["function"]),
                safe_text(r["sqlstate"]),
                str(r["attempts"]),
                str(r["actors"]),
                str(r["no_context"]),
                _when(r["last_at"]),
            )
        console.print(t)
    v = data["vindexing"]
    console.print(
        f"[bold]vindexing[/]: {v['pending']} pending; last refresh "
        + (f"{v['last_refresh_at']:%Y-%m-%d %H:%M:%S} ({v['last_refresh_ms']:.0f} ms)" if v["last_refresh_at"] else "never")
    )


def _when(ts) -> str:
    return f"{ts:%Y-%m-%d %H:%M:%S}" if ts else "-"


def _age(interval) -> str:
    secs = int(interval.total_seconds()) if interval is not None else 0
    return f"{secs // 3600}h{secs % 3600 // 60:02d}m" if secs >= 3600 else f"{secs // 60}m{secs % 60:02d}s"
