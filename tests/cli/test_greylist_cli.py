"""`mailwarden greylist list|allow|forget` on the SQLite store and on Redis."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.greylist.redis_server import redis_server

from mailwarden.cli import run
from mailwarden.greylist import Greylister, GreylistStore, RedisStore, SQLiteStore


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


def invoke(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def populate(store: GreylistStore) -> None:
    """Two pending triplets and one passed one, written with the real clock."""

    async def work() -> None:
        clock = [time.time() - 600]
        g = Greylister(store, clock=lambda: clock[0])
        await g.check("192.0.2.10", "alice@example.com", "bob@example.net")
        await g.check("198.51.100.7", "carol@other.example", "bob@example.net")
        await g.check(
            "2001:db8::1", "dave@big.example", "eve@example.net", spf_pass_domain="big.example"
        )
        clock[0] += 400
        await g.check("192.0.2.10", "alice@example.com", "bob@example.net")
        await store.close()

    asyncio.run(work())


@pytest.fixture(params=["sqlite", "redis"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> list[str]:
    """Store options for the CLI, with the store already holding some entries."""
    if request.param == "sqlite":
        populate(SQLiteStore(tmp_path / "data" / "greylist.sqlite3"))
        return ["--data-dir", str(tmp_path / "data")]
    url = request.getfixturevalue("redis_url")
    # The CLI uses the default prefix: give each test its own database number instead.
    db = int(uuid.uuid4().int % 15) + 1
    db_url = url.rsplit("/", 1)[0] + f"/{db}"

    async def flush() -> None:
        store = RedisStore.from_url(db_url)
        await store.redis.flushdb()
        await store.close()

    asyncio.run(flush())
    populate(RedisStore.from_url(db_url))
    return ["--redis", db_url]


def test_list_json(capsys: pytest.CaptureFixture[str], location: list[str]) -> None:
    code, out, err = invoke(capsys, "greylist", "list", *location, "--json")
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert set(data) == {"entries", "total", "allowed", "networks"}
    assert data["total"] == 3
    states = {(e["origin"], e["sender"], e["state"]) for e in data["entries"]}
    assert states == {
        ("net:192.0.2.0/24", "alice@example.com", "passed"),
        ("net:198.51.100.0/24", "carol@other.example", "pending"),
        ("spf:big.example", "dave@big.example", "pending"),
    }
    alice = next(e for e in data["entries"] if e["sender"] == "alice@example.com")
    assert alice["attempts"] == 2
    assert alice["passed_at"].endswith("Z")
    assert data["networks"] == [
        {
            "network": "net:192.0.2.0/24",
            "passes": 1,
            "expires_at": data["networks"][0]["expires_at"],
        }
    ]
    code, out, _ = invoke(capsys, "greylist", "list", *location, "--state", "pending", "--json")
    assert {e["state"] for e in json.loads(out)["entries"]} == {"pending"}


def test_allow_list_and_forget(capsys: pytest.CaptureFixture[str], location: list[str]) -> None:
    code, out, err = invoke(
        capsys, "greylist", "allow", "203.0.113.0/28", "--note", "partner", *location, "--json"
    )
    assert (code, err) == (0, "")
    assert json.loads(out)["target"] == "net:203.0.113.0/28"
    code, out, _ = invoke(
        capsys, "greylist", "allow", "News@Letters.example", "--days", "2", *location, "--json"
    )
    allowed = json.loads(out)
    assert allowed["target"] == "sender:news@letters.example"
    assert allowed["expires_at"] is not None

    data = json.loads(invoke(capsys, "greylist", "list", *location, "--json")[1])
    assert [a["target"] for a in data["allowed"]] == [
        "net:203.0.113.0/28",
        "sender:news@letters.example",
    ]

    code, out, _ = invoke(capsys, "greylist", "forget", "192.0.2.10", *location, "--json")
    assert code == 0
    assert json.loads(out) == {
        "target": "192.0.2.10",
        "triplets": 1,
        "allow_entries": 0,
        "network_counters": 1,
    }
    code, out, _ = invoke(capsys, "greylist", "forget", "big.example", *location, "--json")
    assert json.loads(out)["triplets"] == 1  # the spf:big.example pool
    code, out, _ = invoke(capsys, "greylist", "forget", "203.0.113.0/28", *location, "--json")
    assert json.loads(out)["allow_entries"] == 1
    data = json.loads(invoke(capsys, "greylist", "list", *location, "--json")[1])
    assert [e["sender"] for e in data["entries"]] == ["carol@other.example"]
    assert data["networks"] == []
    assert [a["target"] for a in data["allowed"]] == ["sender:news@letters.example"]


def test_human_output(capsys: pytest.CaptureFixture[str], location: list[str]) -> None:
    code, out, _ = invoke(capsys, "greylist", "list", *location)
    assert code == 0
    assert "greylist: 3 triplets" in out
    assert "carol" in out
    assert "pending" in out
    code, out, _ = invoke(capsys, "greylist", "allow", "example.com", *location)
    assert out.strip() == "allowed domain:example.com"
    code, out, _ = invoke(capsys, "greylist", "forget", "carol@other.example", *location)
    assert "forgot 1 triplets" in out


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("x", "the data directory {tmp}/x does not exist"),
        ("", "greylist.sqlite3 does not exist"),
        ("file", "{tmp}/file' is a file"),
    ],
)
@pytest.mark.parametrize("command", ["list", "forget"])
def test_missing_store_is_said_and_created_nowhere(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str, where: str, message: str
) -> None:
    """A store that is not there is never shown as an empty one (exit 2, the path named)."""
    (tmp_path / "file").write_text("not a directory")
    args = ["192.0.2.1"] if command == "forget" else []
    data_dir = tmp_path / where if where else tmp_path
    code, out, err = invoke(
        capsys, "greylist", command, *args, "--data-dir", str(data_dir), "--json"
    )
    assert (code, out) == (2, "")
    assert message.format(tmp=tmp_path) in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()
    assert not (tmp_path / "greylist.sqlite3").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["allow", "not a thing"], "is neither an address"),
        (["forget", "@@"], "not a valid e-mail address"),
        (["forget", "spf:"], "spf: needs a domain"),
        (["list", "--redis", "http://example.invalid"], "bad --redis URL"),
        (["list", "--redis", "redis://127.0.0.1:1/0"], "cannot use the greylist store"),
        (["allow", "--days", "0", "192.0.2.1"], "--days"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], message: str
) -> None:
    code, out, err = invoke(capsys, "greylist", *args, "--data-dir", str(tmp_path))
    assert code == 2
    assert out == ""
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_corrupt_store_file_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "greylist.sqlite3").write_bytes(b"this is not a database" * 100)
    code, _, err = invoke(capsys, "greylist", "list", "--data-dir", str(tmp_path))
    assert code == 2
    assert "cannot use the greylist store" in err


def test_subprocess_entry_point(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mailwarden",
            "greylist",
            "allow",
            "192.0.2.1",
            "--data-dir",
            str(tmp_path),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["target"] == "net:192.0.2.1/32"
    assert (tmp_path / "greylist.sqlite3").is_file()


@pytest.mark.parametrize(
    ("days", "message"),
    [
        ("inf", "not a finite number"),
        ("nan", "not a finite number"),
        ("-inf", "not a finite number"),
        ("1e309", "not a finite number"),
        ("1e300", "range"),
        ("-1", "range"),
        ("0", "range"),
        ("٣", "ASCII digits only"),
    ],
)
def test_allow_days_that_are_not_a_duration_write_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, days: str, message: str
) -> None:
    """`--days inf` used to exit 70 after writing an entry that broke `greylist list`."""
    code, out, err = invoke(
        capsys, "greylist", "allow", "192.0.2.1", "--days", days, "--data-dir", str(tmp_path)
    )
    assert (code, out) == (2, "")
    assert "--days" in err
    assert message in err
    assert not (tmp_path / "greylist.sqlite3").exists()


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("fe80::1%eth0", "scoped IPv6 address"),  # used to be stored as it was
        ("999.1.1.1", "an IPv4 address is four numbers"),  # used to be allowed as a domain
        ("300.2.3.0/24", "an IPv4 address is four numbers"),
    ],
)
def test_allow_refuses_addresses_that_are_not(
    capsys: pytest.CaptureFixture[str], location: list[str], target: str, message: str
) -> None:
    code, out, err = invoke(capsys, "greylist", "allow", target, *location)
    assert (code, out) == (2, "")
    assert message in err
    data = json.loads(invoke(capsys, "greylist", "list", *location, "--json")[1])
    assert data["allowed"] == []


def _bad_rows(location: list[str]) -> None:
    """A row an older version wrote (an infinite expiry) and one written by hand (text)."""
    if location[0] == "--data-dir":
        db = sqlite3.connect(Path(location[1]) / "greylist.sqlite3")
        db.executescript(
            "INSERT INTO allowed VALUES ('net:192.0.2.99/32', 1700000000.0, 9e999, 'old');"
            "UPDATE triplets SET expires_at = 'soon' WHERE sender = 'carol@other.example';"
        )
        db.commit()
        db.close()
        return

    async def write() -> None:
        store = RedisStore.from_url(location[1])
        await store.redis.set(
            f"{store.prefix}a:net:192.0.2.99/32",
            '{"target": "net:192.0.2.99/32", "added_at": 1700000000.0, "expires_at": Infinity,'
            ' "note": "old"}',
        )
        async for name in store.redis.scan_iter(match=f"{store.prefix}t:*carol*"):
            await store.redis.hset(name, "expires", "soon")
        await store.close()

    asyncio.run(write())


def test_bad_rows_are_listed_and_flagged(
    capsys: pytest.CaptureFixture[str], location: list[str]
) -> None:
    """`greylist list` used to exit 70 on such a store until the row was forgotten."""
    _bad_rows(location)
    code, out, err = invoke(capsys, "greylist", "list", *location, "--json")
    assert code == 0
    data = json.loads(out)
    [allowed] = data["allowed"]
    assert allowed["target"] == "net:192.0.2.99/32"
    assert allowed["expires_at"] is None
    assert allowed["problem"] == "expires_at inf is not a time"
    carol = next(e for e in data["entries"] if e["sender"] == "carol@other.example")
    assert carol["problem"] == "expires_at is not a number"
    assert carol["expires_at"] is None
    alice = next(e for e in data["entries"] if e["sender"] == "alice@example.com")
    assert "problem" not in alice
    assert "unreadable greylist row net:192.0.2.99/32: expires_at inf is not a time" in err
    code, out, _ = invoke(capsys, "greylist", "list", *location)
    assert code == 0
    assert "? (bad row)" in out
    assert "pending (bad row)" in out
    code, out, _ = invoke(capsys, "greylist", "forget", "192.0.2.99", *location, "--json")
    assert (code, json.loads(out)["allow_entries"]) == (0, 1)  # and it can be removed


def test_a_data_dir_name_too_long_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """pathlib raises for such names instead of saying False (found by the hostile test)."""
    code, out, err = invoke(capsys, "greylist", "list", "--data-dir", "x" * 300)
    assert (code, out) == (2, "")
    assert err.startswith("mailwarden: error: cannot use the data directory xxx")
    assert err.endswith(": File name too long\n")


def test_the_configuration_names_the_store(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Without --data-dir, the greylist commands use the gateway's own store: the data
    directory the configuration names."""
    config = tmp_path / "mailwarden.toml"
    config.write_text('[gateway]\ndata_dir = "state"\n')
    args = ["greylist", "allow", "192.0.2.0/24", "--config", str(config)]
    code, _, err = invoke(capsys, *args)
    assert code == 0, err
    assert (tmp_path / "state" / "greylist.sqlite3").exists()
    code, out, _ = invoke(capsys, "greylist", "list", "--config", str(config), "--json")
    assert code == 0
    assert "192.0.2.0/24" in out
