"""A message body that may live in a spool file: large messages never sit whole in memory.

`SpooledBody` is a body written to a file by the front end that received it; the checks read
it in chunks (DKIM and ARC body hashes stream it), the relay streams it downstream, and the
front end removes the file when the transaction ends. Small bodies stay `bytes`. `chunks` and
`size` read either kind.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CHUNK", "Body", "SpooledBody", "SpooledMessage", "body_size", "chunks"]

CHUNK = 1 << 16  # octets read at a time


class SpooledBody:
    """A body stored in the file `path` (`size` octets); `close()` removes the file."""

    __slots__ = ("path", "size")

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size

    def chunks(self, chunk: int = CHUNK) -> Iterator[bytes]:
        with open(self.path, "rb") as stream:
            while data := stream.read(chunk):
                yield data

    def read(self) -> bytes:
        """The whole body in memory: only for callers that need it whole (and accept the cost)."""
        return self.path.read_bytes()

    def close(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return f"SpooledBody({str(self.path)!r}, {self.size})"


Body = bytes | SpooledBody


def chunks(body: Body, chunk: int = CHUNK) -> Iterator[bytes]:
    """The body's octets in pieces of at most `chunk` (one piece for a small in-memory body)."""
    if isinstance(body, SpooledBody):
        yield from body.chunks(chunk)
    elif body:
        yield body


def body_size(body: Body) -> int:
    return body.size if isinstance(body, SpooledBody) else len(body)


@dataclass(frozen=True, slots=True)
class SpooledMessage:
    """A received message whose body is spooled: `head` is its header section and the empty
    line after it (bounded by the header size limit, so kept in memory)."""

    head: bytes
    body: SpooledBody

    @property
    def size(self) -> int:
        return len(self.head) + self.body.size

    def chunks(self, chunk: int = CHUNK) -> Iterator[bytes]:
        yield self.head
        yield from self.body.chunks(chunk)

    def close(self) -> None:
        self.body.close()
