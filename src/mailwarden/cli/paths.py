"""Directories the long-running commands write into, checked at start-up: a gateway that would
fail on its first message (451 and a traceback) refuses to start instead, saying why."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from mailwarden.settings import Settings

from .common import fail

MAILDIR_SUBDIRS = ("tmp", "new", "cur")


def writable_dir_problem(path: Path) -> str | None:
    """Why files cannot be written in directory `path` (created when missing), or None.

    Tried for real (a file created and removed), so a read-only file system, a missing
    permission or a file where a directory should be are all found, even for root."""
    try:
        if path.exists() and not path.is_dir():
            return "it is not a directory"
        path.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".mailwarden-probe-", dir=path)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        if exc.errno == errno.EROFS:
            return "it is on a read-only file system"
        if exc.errno in (errno.EACCES, errno.EPERM):
            return "permission denied"
        if exc.errno == errno.ENOTDIR:
            return "a part of it is not a directory"
        return exc.strerror or str(exc)
    return None


def require_writable_dir(path: str | Path, option: str) -> None:
    """Exit 2 naming the path and the reason unless files can be written in it."""
    problem = writable_dir_problem(Path(path))
    if problem is not None:
        fail(f"{option} {path}: cannot write there: {problem}")


def require_maildir(path: str | Path, option: str = "--maildir") -> None:
    """A Maildir deliveries can go into: itself and its tmp, new and cur writable."""
    require_writable_dir(path, option)
    for sub in MAILDIR_SUBDIRS:
        require_writable_dir(Path(path) / sub, option)


def data_dir_used(settings: Settings) -> bool:
    """Whether the gateway writes into its data directory: the built-in sink (no downstream),
    a self-signed TLS pair, the SQLite greylist store, or DMARC recording (the SQLite report
    store and the key of redacted failure reports)."""
    gateway = settings.gateway
    if gateway.relay_to is None:
        return True
    tls = gateway.tls
    if tls.enabled and not tls.cert_file and tls.self_signed:
        return True
    reports = settings.reports
    if reports.record and (not reports.postgres or reports.failure.enabled):
        return True
    return settings.greylist.enabled and not settings.greylist.redis


def check_serve_paths(settings: Settings, option: str = "--data-dir") -> None:
    """`serve`: exit 2 at start-up when the data directory (or the sink in it) is unusable;
    `option` names where the directory was set."""
    if not data_dir_used(settings):
        return
    gateway = settings.gateway
    require_writable_dir(gateway.data_dir, option)
    if gateway.relay_to is None:
        require_maildir(gateway.sink_maildir(), f"{option} (sink Maildir)")
