"""A private redis-server for tests: free loopback port, no persistence, stopped afterwards.

The binary must be on PATH (`make test` installs it). Without it, tests that need Redis fail
under CI=true and skip elsewhere, naming what is missing.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest
from tests.testdata import unavailable

STARTUP_TIMEOUT = 10.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def require_redis_server() -> str:
    """Path of redis-server; fail under CI=true, skip elsewhere, when it is missing."""
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server not found on PATH (`make system-deps` installs it)")
    return binary


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """Start redis-server on a free loopback port; yield its URL; stop it at the end."""
    binary = require_redis_server()
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="mailwarden-redis-") as workdir:
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                workdir,
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while not _answers(port):
                if process.poll() is not None:
                    pytest.fail(f"redis-server exited with status {process.returncode}")
                if time.monotonic() > deadline:
                    pytest.fail(f"redis-server did not answer on port {port}")
                time.sleep(0.02)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
