"""A PostgreSQL database for tests: a fresh database on the local server at 127.0.0.1:5432
(trust authentication, user postgres) when one answers, else on a private cluster started in
a temporary directory on a free port (initdb and pg_ctl from /usr/lib/postgresql/*/bin) and
stopped afterwards. Without either, tests that need PostgreSQL fail under CI=true and skip
elsewhere, naming what is missing.

    @pytest.fixture(scope="session")
    def postgres_dsn() -> Iterator[str]:
        with postgres_database() as dsn:
            yield dsn
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from tests.testdata import unavailable

LOCAL = ("127.0.0.1", 5432)
STARTUP_TIMEOUT = 30.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _connectable(dsn: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(dsn, connect_timeout=3) as db:
            db.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _binaries() -> Path | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        path = Path(candidate)
        if (path / "initdb").exists() and (path / "pg_ctl").exists():
            return path
    return None


@contextlib.contextmanager
def _private_cluster() -> Iterator[str]:
    """initdb + pg_ctl start on a free port in a temporary directory; the server's DSN."""
    binaries = _binaries()
    if binaries is None:
        unavailable(
            "no PostgreSQL server at 127.0.0.1:5432 and no initdb/pg_ctl under "
            "/usr/lib/postgresql/*/bin (Debian package postgresql; `make system-deps`)"
        )
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="mailwarden-pg-") as workdir:
        data = Path(workdir) / "data"
        run_as: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            user = "postgres" if shutil.which("runuser") else None
            if user is None:
                unavailable("running as root without runuser: cannot start PostgreSQL")
            os.chmod(workdir, 0o777)
            run_as = ["runuser", "-u", user, "--"]
        subprocess.run(
            [*run_as, str(binaries / "initdb"), "-D", str(data), "-U", "postgres",
             "--auth=trust", "--no-sync"],
            check=True, capture_output=True,
        )  # fmt: skip
        subprocess.run(
            [*run_as, str(binaries / "pg_ctl"), "-D", str(data), "-w", "-l",
             str(Path(workdir) / "log"), "-o",
             f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off",
             "start"],
            check=True, capture_output=True, timeout=STARTUP_TIMEOUT,
        )  # fmt: skip
        try:
            dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while not _connectable(dsn):
                if time.monotonic() > deadline:
                    raise RuntimeError("the private PostgreSQL server did not start")
                time.sleep(0.2)
            yield dsn
        finally:
            subprocess.run(
                [*run_as, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                capture_output=True,
                check=False,
            )


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """The DSN of a server's maintenance database (postgres)."""
    local = f"postgresql://postgres@{LOCAL[0]}:{LOCAL[1]}/postgres"
    if _connectable(local):
        yield local
        return
    with _private_cluster() as dsn:
        yield dsn


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """The DSN of a fresh database, dropped afterwards."""
    import psycopg

    with postgres_server() as server:
        name = f"mailwarden_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(server, autocommit=True) as db:
            db.execute(f"CREATE DATABASE {name}")
        try:
            yield server.rsplit("/", 1)[0] + f"/{name}"
        finally:
            with psycopg.connect(server, autocommit=True) as db:
                db.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
