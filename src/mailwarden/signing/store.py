"""Where the signing keys live: a small store behind a protocol, in memory or on disk.

`DirectoryStore(root)` keeps the state in `root/state.json` and each private key in
`root/keys/<domain>/<selector>.pem` (PKCS#8 PEM, mode 0600). Every file is written to a
temporary name, flushed and renamed, so a crash never leaves half a key or half a state; a
lock file serializes the processes that change the state (`serve`, `dkim rotate`, cron).
`MemoryStore` is the same in memory, for tests and embedding. Both pass one test suite.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

from mailwarden.dkim import PrivateKey, load_private_key, private_key_pem
from mailwarden.dns import is_domain_name

from .model import ManagedKey, StoreError

__all__ = ["DirectoryStore", "KeyStore", "MemoryStore"]

STATE_VERSION = 1


class KeyStore(Protocol):
    """The keys and their private halves. `lock()` guards a load-change-save sequence."""

    def load(self) -> list[ManagedKey]:
        """Every key, in the order saved; StoreError when the state is unreadable."""
        ...

    def save(self, keys: Sequence[ManagedKey]) -> None:
        """Replace the state with `keys` (atomically)."""
        ...

    def version(self) -> object:
        """A value that changes whenever the state changes (cheap: for caches)."""
        ...

    def write_private_key(self, domain: str, selector: str, key: PrivateKey) -> None:
        """Store a new private key; StoreError if one is already stored under that name."""
        ...

    def read_private_key(self, domain: str, selector: str) -> PrivateKey:
        """A stored private key; StoreError when missing or unreadable."""
        ...

    def delete_private_key(self, domain: str, selector: str) -> None:
        """Forget a private key (nothing happens when there is none)."""
        ...

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Exclusive access for a load, change and save."""
        ...


def _check_name(domain: str, selector: str) -> None:
    """Names become paths: only DNS names, so nothing can escape the store."""
    for name in (domain, selector):
        if not is_domain_name(name) or name != name.lower() or name.startswith("."):
            raise StoreError(f"not a usable key name: {name!r}")


class MemoryStore:
    """A store in memory."""

    def __init__(self) -> None:
        self._keys: list[ManagedKey] = []
        self._private: dict[tuple[str, str], bytes] = {}
        self._version = 0
        self._lock = threading.RLock()

    def load(self) -> list[ManagedKey]:
        return list(self._keys)

    def save(self, keys: Sequence[ManagedKey]) -> None:
        self._keys = list(keys)
        self._version += 1

    def version(self) -> object:
        return self._version

    def write_private_key(self, domain: str, selector: str, key: PrivateKey) -> None:
        _check_name(domain, selector)
        if (domain, selector) in self._private:
            raise StoreError(f"a private key for {selector} at {domain} exists already")
        self._private[(domain, selector)] = private_key_pem(key)

    def read_private_key(self, domain: str, selector: str) -> PrivateKey:
        _check_name(domain, selector)
        try:
            return load_private_key(self._private[(domain, selector)])
        except KeyError:
            raise StoreError(f"no private key for {selector} at {domain}") from None

    def delete_private_key(self, domain: str, selector: str) -> None:
        self._private.pop((domain, selector), None)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        with self._lock:
            yield


class DirectoryStore:
    """A store in a directory (created with mode 0700 on first write)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.state_file = self.root / "state.json"
        self._thread_lock = threading.RLock()
        self._depth = 0

    # -- state -----------------------------------------------------------------------------
    def load(self) -> list[ManagedKey]:
        try:
            raw = self.state_file.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreError(f"cannot read {self.state_file}: {exc.strerror or exc}") from None
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise StoreError(f"{self.state_file} is not valid JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise StoreError(f"{self.state_file}: unknown state format")
        entries = data.get("keys")
        if not isinstance(entries, list):
            raise StoreError(f"{self.state_file}: no key list")
        try:
            keys = [ManagedKey.from_dict(entry) for entry in entries]
            for key in keys:
                _check_name(key.domain, key.selector)
        except StoreError as exc:
            raise StoreError(f"{self.state_file}: {exc}") from None
        return keys

    def save(self, keys: Sequence[ManagedKey]) -> None:
        data = {"version": STATE_VERSION, "keys": [key.to_dict() for key in keys]}
        text = json.dumps(data, indent=2, sort_keys=True) + "\n"
        self._ensure_root()
        try:
            _write_atomically(self.state_file, text.encode("utf-8"), replace=True)
        except OSError as exc:
            raise StoreError(f"cannot write {self.state_file}: {exc.strerror or exc}") from None

    def version(self) -> object:
        try:
            stat = self.state_file.stat()
        except OSError:
            return None
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    # -- private keys ----------------------------------------------------------------------
    def _key_path(self, domain: str, selector: str) -> Path:
        _check_name(domain, selector)
        return self.root / "keys" / domain / f"{selector}.pem"

    def write_private_key(self, domain: str, selector: str, key: PrivateKey) -> None:
        path = self._key_path(domain, selector)
        self._ensure_root()
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            _write_atomically(path, private_key_pem(key), replace=False)
        except FileExistsError:
            raise StoreError(f"{path} exists already: not overwriting a private key") from None
        except OSError as exc:
            raise StoreError(f"cannot write {path}: {exc.strerror or exc}") from None

    def read_private_key(self, domain: str, selector: str) -> PrivateKey:
        path = self._key_path(domain, selector)
        try:
            return load_private_key(path.read_bytes())
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise StoreError(f"{path}: {exc}") from None

    def delete_private_key(self, domain: str, selector: str) -> None:
        path = self._key_path(domain, selector)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    # -- locking ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """flock on root/.lock, across processes; re-entrant within this object."""
        with self._thread_lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._ensure_root()
            fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._depth = 1
                try:
                    yield
                finally:
                    self._depth = 0
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def _ensure_root(self) -> None:
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create {self.root}: {exc.strerror or exc}") from None


def _write_atomically(path: Path, data: bytes, *, replace: bool) -> None:
    """Write `data` to `path` (mode 0600) through a temporary file and a rename.

    `replace` False: FileExistsError when `path` exists (checked again at the rename, which
    is done with link() so it can never overwrite)."""
    if not replace and path.exists():
        raise FileExistsError(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if path exists: a key is never overwritten
    finally:
        with contextlib.suppress(FileNotFoundError):
            if not replace:
                tmp.unlink()
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
