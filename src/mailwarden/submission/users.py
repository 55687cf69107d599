"""The users of the submission server: a SQLite file with argon2id password hashes.

Each user has a login name, a password hash (argon2id, argon2-cffi; the cost from
`[submission.argon2]`, older hashes upgraded at the next login), a disabled flag, the
addresses and domains they may send as, and a hold: the reason their outgoing mail is held
(a suspected compromise) until an administrator releases it. Synchronous and small; the
server calls it from a worker thread.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import argon2

from mailwarden.settings import Argon2Settings

from .senders import SenderError, canonical_entry

__all__ = ["MAX_NAME", "Passwords", "User", "UserError", "UserStore", "canonical_name"]

MAX_NAME = 255  # RFC 4616 §2: the authentication identity is at most 255 octets
MAX_PASSWORD = 255

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    password TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    held_reason TEXT,
    held_at REAL,
    released_at REAL,
    created REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS senders (
    name TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    entry TEXT NOT NULL,
    PRIMARY KEY (name, entry)
) WITHOUT ROWID;
"""


class UserError(ValueError):
    """A name, password or address that cannot be stored, or a user that does not exist."""


def canonical_name(name: str) -> str:
    """A login name as stored: trimmed, lower case, printable, at most 255 octets."""
    text = name.strip().lower()
    try:
        octets = len(text.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate (undecodable bytes on the command line)
        raise UserError(f"invalid user name {name!r}: not UTF-8 text") from None
    if not text or octets > MAX_NAME:
        raise UserError(f"a user name has 1 to {MAX_NAME} octets")
    if not text.isprintable() or any(c.isspace() for c in text):
        raise UserError(f"invalid user name {name!r}: no spaces or control characters")
    return text


@dataclass(frozen=True, slots=True)
class User:
    name: str
    password_hash: str = field(repr=False)
    disabled: bool = False
    senders: tuple[str, ...] = ()  # addresses and @domains the user may send as
    held_reason: str | None = None
    held_at: float | None = None
    released_at: float | None = None
    created: float = 0.0

    @property
    def held(self) -> bool:
        return self.held_reason is not None

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "disabled": self.disabled,
            "senders": list(self.senders),
            "held": self.held,
            "held_reason": self.held_reason,
            "held_at": self.held_at,
            "released_at": self.released_at,
        }


class Passwords:
    """argon2id hashing with the configured cost."""

    def __init__(self, config: Argon2Settings | None = None) -> None:
        config = config or Argon2Settings()
        self.hasher = argon2.PasswordHasher(
            time_cost=config.time_cost,
            memory_cost=config.memory_cost,
            parallelism=config.parallelism,
            type=argon2.Type.ID,
        )
        self._dummy: str | None = None

    def hash(self, password: str) -> str:
        if not password or len(password.encode("utf-8")) > MAX_PASSWORD or "\x00" in password:
            raise UserError(f"a password has 1 to {MAX_PASSWORD} octets and no NUL")
        return self.hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether `password` matches; without a hash (no such user) a dummy hash is verified
        anyway, so the answer takes as long either way."""
        if password_hash is None:
            if self._dummy is None:
                self._dummy = self.hasher.hash("mailwarden: no such user")
            password_hash = self._dummy
            password = "\x00" + password  # never matches
        try:
            return self.hasher.verify(password_hash, password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return self.hasher.check_needs_rehash(password_hash)
        except argon2.exceptions.InvalidHashError:
            return True


class UserStore:
    """Users in the SQLite file at `path` (created when missing). Thread-safe."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            self.path, timeout=10.0, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA busy_timeout = 10000")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA foreign_keys = ON")
        self._db.executescript(SCHEMA)

    def _now(self) -> float:
        return self._clock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _write(self, sql: str, args: tuple[object, ...]) -> int:
        with self._lock:
            return self._db.execute(sql, args).rowcount

    def add(self, name: str, password_hash: str, senders: Iterable[str] = ()) -> User:
        """A new user; their own name is a sender address when it is one."""
        name = canonical_name(name)
        entries = _entries(senders)
        if "@" in name:
            try:
                own = canonical_entry(name)
            except SenderError:
                own = None
            if own is not None and own not in entries:
                entries.insert(0, own)
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(
                    "INSERT INTO users (name, password, created) VALUES (?, ?, ?)",
                    (name, password_hash, self._now()),
                )
                self._db.executemany(
                    "INSERT INTO senders (name, entry) VALUES (?, ?)",
                    [(name, entry) for entry in entries],
                )
                self._db.execute("COMMIT")
            except sqlite3.IntegrityError:
                self._db.execute("ROLLBACK")
                raise UserError(f"user {name!r} exists already") from None
        user = self.get(name)
        assert user is not None
        return user

    def get(self, name: str) -> User | None:
        try:
            name = canonical_name(name)
        except UserError:
            return None
        with self._lock:
            row = self._db.execute(
                "SELECT name, password, disabled, held_reason, held_at, released_at, created "
                "FROM users WHERE name = ?",
                (name,),
            ).fetchone()
            if row is None:
                return None
            entries = self._db.execute(
                "SELECT entry FROM senders WHERE name = ? ORDER BY entry", (name,)
            ).fetchall()
        return _user(row, tuple(e[0] for e in entries))

    def all(self) -> list[User]:
        with self._lock:
            names = [r[0] for r in self._db.execute("SELECT name FROM users ORDER BY name")]
        return [u for u in (self.get(n) for n in names) if u is not None]

    def _must(self, changed: int, name: str) -> None:
        if not changed:
            raise UserError(f"no such user {name!r}")

    def set_password(self, name: str, password_hash: str) -> None:
        name = canonical_name(name)
        self._must(
            self._write("UPDATE users SET password = ? WHERE name = ?", (password_hash, name)),
            name,
        )

    def set_disabled(self, name: str, disabled: bool) -> None:
        name = canonical_name(name)
        self._must(
            self._write("UPDATE users SET disabled = ? WHERE name = ?", (int(disabled), name)),
            name,
        )

    def change_senders(
        self, name: str, add: Iterable[str] = (), remove: Iterable[str] = ()
    ) -> None:
        name = canonical_name(name)
        added, removed = _entries(add), _entries(remove)
        if self.get(name) is None:
            raise UserError(f"no such user {name!r}")
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT OR IGNORE INTO senders (name, entry) VALUES (?, ?)",
                [(name, e) for e in added],
            )
            self._db.executemany(
                "DELETE FROM senders WHERE name = ? AND entry = ?", [(name, e) for e in removed]
            )
            self._db.execute("COMMIT")

    def hold(self, name: str, reason: str) -> bool:
        """Hold the user's outgoing mail; False when it was held already."""
        name = canonical_name(name)
        return bool(
            self._write(
                "UPDATE users SET held_reason = ?, held_at = ? "
                "WHERE name = ? AND held_reason IS NULL",
                (reason, self._now(), name),
            )
        )

    def release(self, name: str) -> bool:
        """End a hold; False when the user was not held. UserError when there is no user."""
        name = canonical_name(name)
        if self.get(name) is None:
            raise UserError(f"no such user {name!r}")
        return bool(
            self._write(
                "UPDATE users SET held_reason = NULL, held_at = NULL, released_at = ? "
                "WHERE name = ? AND held_reason IS NOT NULL",
                (self._now(), name),
            )
        )


def _entries(values: Iterable[str]) -> list[str]:
    out: list[str] = []
    for value in values:
        try:
            entry = canonical_entry(value)
        except SenderError as exc:
            raise UserError(str(exc)) from None
        if entry not in out:
            out.append(entry)
    return out


def _user(row: tuple[object, ...], senders: tuple[str, ...]) -> User:
    name, password, disabled, reason, held_at, released_at, created = row
    return User(
        name=str(name),
        password_hash=str(password),
        disabled=bool(disabled),
        senders=senders,
        held_reason=None if reason is None else str(reason),
        held_at=None if held_at is None else float(held_at),  # type: ignore[arg-type]
        released_at=None if released_at is None else float(released_at),  # type: ignore[arg-type]
        created=float(created),  # type: ignore[arg-type]
    )
