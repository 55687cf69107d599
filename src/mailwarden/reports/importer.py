"""Importing reports into the store: files, standard input, and a watched Maildir.

Each report found becomes one `Imported` line (imported, duplicate or refused, with its
reason); the same report twice is stored once (by reporter and report id). A bounce of one
of our own reports goes to the sender, which suppresses the destination it names.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .incoming import Found, Limits, is_bounce, read_reports
from .model import AggregateReport, ReportKind
from .store import ReportStore

__all__ = ["Imported", "import_data", "maildir_messages", "watch_maildir"]

log = logging.getLogger("mailwarden.reports")

BounceHandler = Callable[[bytes], Awaitable[str | None]]


@dataclass(frozen=True, slots=True)
class Imported:
    """One report found in one input, and what became of it."""

    file: str
    status: str  # "imported", "duplicate" or "refused"
    reason: str
    kind: ReportKind
    org_name: str | None = None
    report_id: str | None = None
    domain: str | None = None
    messages: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "status": self.status,
            "reason": self.reason or None,
            "kind": self.kind.value,
            "org_name": self.org_name,
            "report_id": self.report_id,
            "domain": self.domain,
            "messages": self.messages,
        }


async def _keep(store: ReportStore, found: Found, file: str, now: float) -> Imported:
    report = found.report
    if report is None:
        return Imported(file, "refused", found.reason, found.kind)
    if isinstance(report, AggregateReport):
        added = await store.add_aggregate(report, found.where, now)
        org = report.org_name
    else:
        added = await store.add_failure(report, found.where, now)
        org = report.reporter
    reason = "read leniently: the XML was not well-formed" if found.recovered else ""
    return Imported(
        file,
        "imported" if added else "duplicate",
        reason,
        found.kind,
        org,
        report.report_id,
        report.domain,
        report.messages,
    )


async def import_data(
    store: ReportStore,
    data: bytes,
    file: str,
    *,
    now: float,
    limits: Limits | None = None,
    bounces: BounceHandler | None = None,
) -> list[Imported]:
    """Every report in `data` kept in `store` (parsing runs on a worker thread)."""
    if is_bounce(data):
        if bounces is not None:
            destination = await bounces(data)
            if destination:
                log.warning("%s: a bounce of our report to %s", file, destination)
        return []
    found = await asyncio.to_thread(read_reports, data, file, limits)
    return [await _keep(store, item, file, now) for item in found]


def maildir_messages(maildir: Path) -> list[Path]:
    """Messages waiting in the Maildir's new/ folder, oldest first."""
    folder = maildir / "new"
    if not folder.is_dir():
        return []
    entries = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    return sorted(entries, key=lambda p: (p.stat().st_mtime, p.name))


async def watch_maildir(
    store: ReportStore,
    maildir: Path,
    stop: asyncio.Event,
    *,
    limits: Limits,
    clock: Callable[[], float],
    bounces: BounceHandler | None = None,
    interval: float = 60.0,
) -> None:
    """Import every message arriving in `maildir`, then move it to cur/ marked seen
    (Maildir semantics); a message that cannot be read is moved all the same, and logged."""
    while not stop.is_set():
        try:
            for path in await asyncio.to_thread(maildir_messages, maildir):
                data = await asyncio.to_thread(path.read_bytes)
                for line in await import_data(
                    store, data, str(path), now=clock(), limits=limits, bounces=bounces
                ):
                    if line.status == "refused":
                        log.warning("%s: refused: %s", path.name, line.reason)
                target = maildir / "cur" / (path.name.split(":2,")[0] + ":2,S")
                await asyncio.to_thread(os.makedirs, target.parent, exist_ok=True)
                await asyncio.to_thread(os.replace, path, target)
        except Exception:
            log.exception("reports: reading the Maildir %s failed", maildir)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval):
                await stop.wait()
