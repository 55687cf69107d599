"""SRS secrets in a file, one a line, as postsrsd keeps them (the first signs, all verify).

`read_secrets` reads such a file; `ensure_secret_file` makes one with a random secret when it
is missing (mode 0600, written atomically), so a single host needs no setup. Several hosts
that rewrite for the same SRS domain must share the file.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
from pathlib import Path

__all__ = ["SecretFileError", "ensure_secret_file", "read_secrets"]


class SecretFileError(ValueError):
    """The secret file cannot be read or holds no secret."""


def read_secrets(path: str | Path) -> tuple[bytes, ...]:
    """The secrets of the file, in order: each non-empty line, without its line end (as
    postsrsd reads them: spaces inside a line belong to the secret)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SecretFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    found = tuple(line for line in data.replace(b"\r", b"\n").split(b"\n") if line)
    if not found:
        raise SecretFileError(f"{path} holds no secret")
    return found


def ensure_secret_file(path: str | Path) -> tuple[bytes, ...]:
    """The secrets of `path`, after making the file with one random secret if it is missing."""
    target = Path(path)
    if not target.exists():
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        secret = base64.b64encode(secrets.token_bytes(24)) + b"\n"
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, secret)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, target)  # another process made it first: keep theirs
        except FileExistsError:
            pass
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    return read_secrets(target)
