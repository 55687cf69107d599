"""The key store contract, one suite for the memory and the directory store; then what only
the directory store promises (file modes, atomic writes, locking across processes, hostile
state files)."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from mailwarden.dkim import KeyType, key_record
from mailwarden.signing import DirectoryStore, KeyStore, ManagedKey, MemoryStore, Stage, StoreError

KEY = ed25519.Ed25519PrivateKey.generate()
ENTRY = ManagedKey(
    domain="example.com",
    selector="ed25519202405",
    algorithm=KeyType.ED25519,
    bits=256,
    record=key_record(KEY),
    created=1_714_521_600.0,
    since=1_714_521_600.0,
)


@pytest.fixture(params=["memory", "directory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyStore]:
    if request.param == "memory":
        yield MemoryStore()
    else:
        yield DirectoryStore(tmp_path / "dkim")


def test_empty_store_has_no_keys(store: KeyStore) -> None:
    assert store.load() == []


def test_state_round_trip_and_version_changes(store: KeyStore) -> None:
    before = store.version()
    active = ENTRY.moved(Stage.ACTIVE, ENTRY.created + 60, "published", activated=ENTRY.created)
    store.save([active])
    assert store.load() == [active]
    assert store.version() != before
    again = store.version()
    store.save([ENTRY])
    assert store.load() == [ENTRY]
    assert store.version() != again


def test_private_keys_are_stored_once_and_deleted(store: KeyStore) -> None:
    store.write_private_key("example.com", "s1", KEY)
    assert store.read_private_key("example.com", "s1").public_key() == KEY.public_key()
    with pytest.raises(StoreError, match="exists"):
        store.write_private_key("example.com", "s1", ed25519.Ed25519PrivateKey.generate())
    store.delete_private_key("example.com", "s1")
    store.delete_private_key("example.com", "s1")  # twice is fine
    with pytest.raises(StoreError):
        store.read_private_key("example.com", "s1")


@pytest.mark.parametrize(
    ("domain", "selector"),
    [
        ("../etc", "s1"),
        ("example.com", "../../passwd"),
        ("example.com", "a/b"),
        ("Example.com", "s1"),  # names are stored in lower case only
        ("example.com", ""),
        ("", "s1"),
        ("example.com", "s1\x00"),
        (".example.com", "s1"),
    ],
)
def test_names_that_would_escape_are_refused(store: KeyStore, domain: str, selector: str) -> None:
    with pytest.raises(StoreError):
        store.write_private_key(domain, selector, KEY)
    with pytest.raises(StoreError):
        store.read_private_key(domain, selector)


def test_lock_is_reentrant(store: KeyStore) -> None:
    with store.lock(), store.lock():
        store.save([ENTRY])
    assert store.load() == [ENTRY]


# -- the directory store ------------------------------------------------------------------


def test_files_are_private(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        store = DirectoryStore(tmp_path / "dkim")
        store.save([ENTRY])
        store.write_private_key("example.com", "s1", KEY)
    finally:
        os.umask(old)
    pem = tmp_path / "dkim" / "keys" / "example.com" / "s1.pem"
    for path in (pem, tmp_path / "dkim" / "state.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for folder in (tmp_path / "dkim", pem.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert pem.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert not [p for p in pem.parent.iterdir() if p.name.startswith(".")]  # no temp left


def test_state_file_is_readable_json(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    store.save([ENTRY])
    data = json.loads((tmp_path / "state.json").read_text())
    assert data["version"] == 1
    assert data["keys"][0]["selector"] == "ed25519202405"
    assert data["keys"][0]["stage"] == "pending"
    assert data["keys"][0]["name"] == "ed25519202405._domainkey.example.com"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[]", "unknown state format"),
        (b'{"version": 2, "keys": []}', "unknown state format"),
        (b'{"version": 1}', "no key list"),
        (b'{"version": 1, "keys": [1]}', "not an object"),
        (b'{"version": 1, "keys": [{"domain": "example.com"}]}', "malformed"),
        (
            json.dumps({"version": 1, "keys": [{**ENTRY.to_dict(), "stage": "dancing"}]}).encode(),
            "malformed",
        ),
        (
            json.dumps({"version": 1, "keys": [{**ENTRY.to_dict(), "created": "soon"}]}).encode(),
            "malformed",
        ),
        (
            json.dumps({"version": 1, "keys": [{**ENTRY.to_dict(), "selector": "../x"}]}).encode(),
            "not a usable key name",
        ),
        (
            json.dumps({"version": 1, "keys": [{**ENTRY.to_dict(), "bits": True}]}).encode(),
            "malformed",
        ),
    ],
)
def test_hostile_state_files_give_a_store_error(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    (tmp_path / "state.json").write_bytes(content)
    with pytest.raises(StoreError, match=reason):
        DirectoryStore(tmp_path).load()


def test_an_unreadable_store_says_so(tmp_path: Path) -> None:
    (tmp_path / "state.json").mkdir()
    with pytest.raises(StoreError, match="cannot read"):
        DirectoryStore(tmp_path).load()


def _append(root: str, index: int) -> None:
    store = DirectoryStore(root)
    for n in range(20):
        with store.lock():
            keys = store.load()
            selector = f"p{index}n{n}"
            keys.append(ManagedKey(**{**_fields(ENTRY), "selector": selector}))
            store.save(keys)


def _fields(key: ManagedKey) -> dict[str, object]:
    return {name: getattr(key, name) for name in ManagedKey.__dataclass_fields__}


def test_the_lock_serializes_processes(tmp_path: Path) -> None:
    """Four processes each add 20 keys under the lock: none is lost."""
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append, args=(str(tmp_path), i)) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    selectors = {key.selector for key in DirectoryStore(tmp_path).load()}
    assert len(selectors) == 80
