"""`mailwarden user ...` and `mailwarden submit`: the commands, their errors, hostile input."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailwarden.cli import run
from mailwarden.submission import Passwords, UserStore

CONFIG = """
[submission.argon2]
time_cost = 1
memory_cost = 8
parallelism = 1
"""


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    (tmp_path / "mw.toml").write_text(CONFIG)
    return ["--config", str(tmp_path / "mw.toml"), "--data-dir", str(tmp_path / "data")]


def _user(setup: list[str], *args: str, stdin: str = "", monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return run(["user", *args, *setup])


def _store(setup: list[str]) -> UserStore:
    return UserStore(Path(setup[-1]) / "users.sqlite3")


def test_add_list_passwd_disable_release(
    setup: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    add = ["add", "Alice@A.example", "--address", "a.smith@a.example", "--password-stdin"]
    assert _user(setup, *add, stdin="s3cret pass\n", monkeypatch=monkeypatch) == 0
    assert "added alice@a.example" in capsys.readouterr().out
    store = _store(setup)
    user = store.get("alice@a.example")
    assert user is not None
    assert user.senders == ("a.smith@a.example", "alice@a.example")
    assert Passwords().verify(user.password_hash, "s3cret pass")
    assert user.password_hash.startswith("$argon2id$v=19$m=8,t=1,p=1$")
    assert (
        _user(
            setup,
            "passwd",
            "alice@a.example",
            "--password-stdin",
            stdin="new\n",
            monkeypatch=monkeypatch,
        )
        == 0
    )
    user = store.get("alice@a.example")
    assert user is not None
    assert Passwords().verify(user.password_hash, "new")
    assert _user(setup, "disable", "alice@a.example", monkeypatch=monkeypatch) == 0
    assert (
        _user(setup, "senders", "alice@a.example", "--add", "@b.example", monkeypatch=monkeypatch)
        == 0
    )
    capsys.readouterr()
    store.hold("alice@a.example", "volume: 999 today")
    assert _user(setup, "list", "--json", monkeypatch=monkeypatch) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["name"] == "alice@a.example"
    assert listed["disabled"] is True
    assert listed["held_reason"] == "volume: 999 today"
    assert "@b.example" in listed["senders"]
    assert "password" not in json.dumps(listed)
    assert _user(setup, "release", "alice@a.example", monkeypatch=monkeypatch) == 0
    assert "released alice@a.example" in capsys.readouterr().out
    user = store.get("alice@a.example")
    assert user is not None
    assert not user.held
    assert _user(setup, "release", "alice@a.example", monkeypatch=monkeypatch) == 0
    assert "was not held" in capsys.readouterr().out
    assert _user(setup, "list", monkeypatch=monkeypatch) == 0
    assert "alice@a.example" in capsys.readouterr().out
    store.close()


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["add", "alice@a.example"], "", "--password-stdin"),  # no terminal to ask
        (["add", "alice@a.example", "--password-stdin"], "\n", "empty password"),
        (["add", "a b", "--password-stdin"], "pw\n", "invalid user name"),
        (["add", "x" * 300, "--password-stdin"], "pw\n", "1 to 255 octets"),
        (
            ["add", "alice@a.example", "--address", "nope", "--password-stdin"],
            "pw\n",
            "not an address",
        ),
        (
            ["add", "alice@a.example", "--domain", "-bad-", "--password-stdin"],
            "pw\n",
            "invalid domain",
        ),
        (["add", "alice@a.example", "--password-stdin"], "p\x00w\n", "no NUL"),
        (["add", "alice@a.example", "--password-stdin"], "p" * 300 + "\n", "1 to 255"),
        (["passwd", "nobody", "--password-stdin"], "pw\n", "no such user"),
        (["disable", "nobody"], "", "no such user"),
        (["release", "nobody"], "", "no such user"),
        (["senders", "nobody", "--add", "x@a.example"], "", "no such user"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    setup: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    stdin: str,
    message: str,
) -> None:
    assert _user(setup, *args, stdin=stdin, monkeypatch=monkeypatch) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_a_user_added_twice(
    setup: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        _user(setup, "add", "bob", "--password-stdin", stdin="pw\n", monkeypatch=monkeypatch) == 0
    )
    assert (
        _user(setup, "add", "BOB", "--password-stdin", stdin="pw\n", monkeypatch=monkeypatch) == 2
    )
    assert "exists already" in capsys.readouterr().err


def test_a_bad_configuration_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.toml").write_text("[submission]\nrecipient_delimiter = '@'\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert run(["user", "list", "--config", str(tmp_path / "bad.toml")]) == 2
    assert "submission.recipient_delimiter" in capsys.readouterr().err


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.sampled_from(["add", "passwd", "disable", "enable", "release", "senders", "list"]),
    st.lists(st.text(max_size=30), max_size=4),
    st.text(max_size=40),
)
def test_hostile_arguments_never_crash(
    setup: list[str], command: str, args: list[str], stdin: str
) -> None:
    sys_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        code = (
            run(["user", command, *args, "--password-stdin", *setup])
            if command in ("add", "passwd")
            else run(["user", command, *args, *setup])
        )
    finally:
        sys.stdin = sys_stdin
    assert code in (0, 2)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_submit_runs_and_stops_on_sigterm(tmp_path: Path) -> None:
    """The real command: it listens on both ports, speaks TLS on 465, stops on SIGTERM."""
    (tmp_path / "mw.toml").write_text(CONFIG)
    starttls, implicit = _free_port(), _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mailwarden",
            "submit",
            "--config",
            str(tmp_path / "mw.toml"),
            "--data-dir",
            str(tmp_path / "data"),
            "--listen",
            f"127.0.0.1:{starttls}",
            "--listen-tls",
            f"127.0.0.1:{implicit}",
            "--hostname",
            "msa.a.example",
            "--dns-zone",
            os.devnull,
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        info = json.loads(process.stdout.readline())
        assert info["listen"] == [f"127.0.0.1:{starttls}", f"127.0.0.1:{implicit}"]
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        with (
            socket.create_connection(("127.0.0.1", implicit), timeout=10) as raw,
            context.wrap_socket(raw) as tls,
        ):
            assert tls.recv(1024).startswith(b"220 msa.a.example ESMTP")
        with socket.create_connection(("127.0.0.1", starttls), timeout=10) as plain:
            assert plain.recv(1024).startswith(b"220 msa.a.example ESMTP")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.returncode == 0, process.stderr.read() if process.stderr else ""
    if process.stdout:
        process.stdout.close()
    if process.stderr:
        process.stderr.close()


def test_submit_refuses_a_port_in_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = run(
            [
                "submit",
                "--data-dir",
                str(tmp_path / "d"),
                "--listen",
                f"127.0.0.1:{port}",
                "--listen-tls",
                "",
                "--dns-zone",
                os.devnull,
            ]
        )
    assert code == 2
    assert "cannot listen" in capsys.readouterr().err
    time.sleep(0)
