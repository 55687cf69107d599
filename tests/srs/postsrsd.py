"""The real postsrsd (Debian's 1.x: TCP lookup tables) on free loopback ports, for interop."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from tests.gateway.helpers import require_program
from tests.gateway.postfix import free_port, port_open


@dataclass
class PostSRSd:
    forward_port: int
    reverse_port: int

    @staticmethod
    def _ask(port: int, key: str) -> tuple[int, str]:
        """One Postfix tcp_table(5) query: `get KEY`, answer `200 value` / `500 text`."""
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"get " + quote(key, safe="@=+-/.").encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        code, _, value = data.decode().rstrip("\n").partition(" ")
        return int(code), unquote(value)

    def forward(self, address: str) -> tuple[int, str]:
        return self._ask(self.forward_port, address)

    def reverse(self, address: str) -> tuple[int, str]:
        return self._ask(self.reverse_port, address)


@contextmanager
def postsrsd(secret_file: Path, domain: str) -> Iterator[PostSRSd]:
    program = require_program("postsrsd")
    forward, reverse = free_port(), free_port()
    process = subprocess.Popen(
        [
            program,
            f"-s{secret_file}",
            f"-d{domain}",
            "-l127.0.0.1",
            f"-f{forward}",
            f"-r{reverse}",
            "-t10",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while not (port_open(forward) and port_open(reverse)):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"postsrsd did not start: {process.stderr.read()!r}")  # type: ignore[union-attr]
            time.sleep(0.05)
        yield PostSRSd(forward, reverse)
    finally:
        process.terminate()
        process.wait(10)
        if process.stderr is not None:
            process.stderr.close()
