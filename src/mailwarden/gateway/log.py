"""The transaction log: one JSON object a line, one line per transaction (or per connection
that never started one)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

__all__ = ["TransactionLog"]


class TransactionLog:
    """Appends JSON lines to a file, standard output ("-"), or nowhere (""). Keeps the last
    records in memory when `keep` is set (tests, the sink)."""

    def __init__(self, destination: str = "-", *, keep: int = 0) -> None:
        self.destination = destination
        self.keep = keep
        self.records: list[dict[str, Any]] = []
        self._handle: IO[str] | None = None
        if destination and destination != "-":
            Path(destination).parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(destination, "a", encoding="utf-8", buffering=1)  # noqa: SIM115

    @property
    def enabled(self) -> bool:
        """Whether `write` keeps or writes anything (a caller may skip building records)."""
        return bool(self.destination or self.keep)

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"), **record}
        if self.keep:
            self.records.append(record)
            del self.records[: -self.keep]
        if not self.destination:
            return
        line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
        if self._handle is not None:
            self._handle.write(line)
        else:
            sys.stdout.write(line)
            sys.stdout.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
