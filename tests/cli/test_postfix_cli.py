"""`mailwarden postfix config` and `postfix check`: the printed lines make a configuration
that `check` finds right (with a live milter negotiation), and a real Postfix configured with
a misplaced policy service and unsafe milter settings is reported with exit 1."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.gateway.helpers import require_program
from tests.gateway.postfix import MASTER_CF, free_port, start_postfix

from mailwarden.cli import run
from mailwarden.cli.postfixconf import (
    check_gateway,
    check_policy,
    duration,
    milters,
    restrictions,
)
from mailwarden.milter.protocol import (
    Action,
    OptionNegotiation,
    PacketReader,
    Protocol,
    encode_response,
)


def invoke(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run(list(argv))
    return code, out.getvalue(), err.getvalue()


class FakeMilter:
    """Answers the option negotiation as a version 6 milter would, then waits for Quit."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.negotiations = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                packets = PacketReader()
                while data := conn.recv(4096):
                    for code, _payload in packets.feed(data):
                        if code == b"O":
                            self.negotiations += 1
                            answer = OptionNegotiation(6, Action(0x01), Protocol(0x02))
                            conn.sendall(encode_response(answer))

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def milter() -> Iterator[FakeMilter]:
    server = FakeMilter()
    try:
        yield server
    finally:
        server.close()


def test_config_needs_a_choice() -> None:
    code, out, err = invoke("postfix", "config")
    assert code == 2
    assert out == ""
    assert "choose at least one of --milter, --policy, --gateway" in err


def test_config_places_the_policy_service_after_relay_control() -> None:
    code, out, _ = invoke("postfix", "config", "--policy")
    assert code == 0
    recipient = out[out.index("smtpd_recipient_restrictions =") :]
    assert recipient.index("reject_unauth_destination") < recipient.index("check_policy_service")
    assert "timeout=15s" in out  # [deadlines] rcpt (10 s) and a margin
    assert "default_action=DUNNO" in out
    assert "opens the relay" in out  # the comment saying why
    assert "master.cf" not in out  # nothing to add there


def test_config_json_and_every_integration() -> None:
    code, out, _ = invoke("postfix", "config", "--policy", "--milter", "--gateway", "--json")
    assert code == 0
    lines = json.loads(out)
    assert set(lines) == {"main.cf", "master.cf"}
    assert "milter_default_action = tempfail" in lines["main.cf"]
    assert "milter_protocol = 6" in lines["main.cf"]
    assert "127.0.0.1:10025 inet" in lines["master.cf"]
    assert "-o smtpd_relay_restrictions=reject_unauth_destination" in lines["master.cf"]


def test_config_rate_limits_add_end_of_data(tmp_path: Path) -> None:
    config = tmp_path / "m.toml"
    config.write_text(
        '[policy_service]\nrate_limits = true\nlisten = "unix:/var/spool/postfix/private/mw"\n'
    )
    code, out, _ = invoke("postfix", "config", "--policy", "--config", str(config))
    assert code == 0
    assert "smtpd_end_of_data_restrictions = check_policy_service { unix:private/mw," in out


def write_config_dir(root: Path, main_cf: str) -> Path:
    """A Postfix configuration directory postconf reads (Postfix not started)."""
    etc = root / "etc"
    etc.mkdir(parents=True)
    base = f"compatibility_level = 3.6\nqueue_directory = {root}\n"
    (etc / "main.cf").write_text(base + main_cf)
    (etc / "master.cf").write_text(MASTER_CF.format(port=free_port()))
    return etc


def test_printed_lines_pass_the_check(tmp_path: Path, milter: FakeMilter) -> None:
    require_program("postconf")
    ours = tmp_path / "mailwarden.toml"
    ours.write_text('[gateway]\nrelay_to = "127.0.0.1:10025"\n')
    argv = ["--policy", "--milter", "--gateway", "--config", str(ours), "--json"]
    code, out, _ = invoke("postfix", "config", *argv)
    assert code == 0
    lines = json.loads(out)
    main_cf = lines["main.cf"].replace("127.0.0.1:11332", f"127.0.0.1:{milter.port}")
    etc = write_config_dir(tmp_path, main_cf)
    with (etc / "master.cf").open("a") as master:
        master.write(lines["master.cf"] + "\n")
    code, out, err = invoke("postfix", "check", "-c", str(etc), "--config", str(ours), "--json")
    report = json.loads(out)
    assert report["errors"] == 0, report
    assert report["warnings"] == 0, report
    assert code == 0, err
    texts = [f["text"] for f in report["findings"]]
    assert "placed after reject_unauth_destination" in texts
    assert "live negotiation: milter protocol version 6 answered" in texts
    assert "127.0.0.1:10025 inet smtpd takes what mailwarden serve relays" in texts
    assert milter.negotiations == 1


def test_gateway_without_a_listener_is_an_error() -> None:
    master = "smtp inet n - y - - smtpd\npickup unix n - y 60 1 pickup\n"
    (finding,) = check_gateway(master, ("127.0.0.1", 10025))
    assert finding.level == "error"
    assert "no smtpd listens there" in finding.text
    (finding,) = check_gateway(master, ("127.0.0.1", 25))
    assert finding.level == "ok"
    (finding,) = check_gateway("10025 inet n - n - - lmtp\n", ("127.0.0.1", 10025))
    assert finding.level == "error"


@pytest.fixture
def misconfigured() -> Iterator[Path]:
    """A running private Postfix whose policy service is asked before relay control."""
    require_program("postfix")
    root = Path(tempfile.mkdtemp(prefix="mailwarden-check-"))
    root.chmod(0o755)
    dead = free_port()  # nothing listens there
    extra = f"""
smtpd_relay_restrictions = permit_mynetworks,
    check_policy_service inet:127.0.0.1:10040, reject_unauth_destination
smtpd_milters = {{ inet:127.0.0.1:{dead}, command_timeout=5s }}
milter_default_action = reject
"""
    postfix = start_postfix(root / "postfix", extra)
    try:
        yield postfix.config_dir
    finally:
        postfix.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_check_reports_a_misplaced_policy_service(misconfigured: Path) -> None:
    code, out, err = invoke("postfix", "check", "-c", str(misconfigured), "--timeout", "2")
    assert code == 1, err
    lines = out.splitlines()
    assert any(
        line.startswith("error: main.cf: smtpd_relay_restrictions: check_policy_service ")
        and "(mailwarden): placed before reject_unauth_destination" in line
        for line in lines
    ), out
    assert any("default_action reject" in line and line.startswith("error") for line in lines)
    assert any("command_timeout 5s" in line and line.startswith("warning") for line in lines)
    assert any("live negotiation failed" in line and "Connection refused" in line for line in lines)
    assert any("milter_protocol: not set" in line for line in lines)
    assert lines[-1] == "3 error(s), 2 warning(s)"


def test_check_bad_input_exits_2(tmp_path: Path) -> None:
    require_program("postconf")
    code, out, err = invoke("postfix", "check", "-c", str(tmp_path))
    assert code == 2
    assert out == ""
    assert err.startswith("mailwarden: error: postconf -c ")
    code, _, err = invoke("postfix", "check", "--postconf", str(tmp_path / "nope"))
    assert code == 2
    assert "cannot run" in err


# -- the pure part --------------------------------------------------------------------------


def test_restriction_lists_parse_as_postfix_writes_them() -> None:
    items = restrictions(
        "permit_mynetworks,reject_unauth_destination check_policy_service "
        "{ inet:127.0.0.1:10040, timeout=10s, default_action=DUNNO },"
        " check_policy_service unix:private/policy"
    )
    assert [i.name for i in items] == [
        "permit_mynetworks",
        "reject_unauth_destination",
        "check_policy_service",
        "check_policy_service",
    ]
    assert items[2].address == "inet:127.0.0.1:10040"
    assert dict(items[2].options) == {"timeout": "10s", "default_action": "DUNNO"}
    assert items[3].address == "unix:private/policy"
    assert [m.address for m in milters("inet:a:1, { unix:b, command_timeout=5s } local:c")] == [
        "inet:a:1",
        "unix:b",
        "local:c",
    ]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("100s", 100), ("5m", 300), ("30", 30), ("1h", 3600), ("", None), ("x", None), ("-1", None)],
)
def test_durations(text: str, seconds: float | None) -> None:
    assert duration(text) == seconds


TOKEN = st.from_regex(r"[a-z_]{1,20}(:[a-z0-9.:/]{1,20})?", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(st.lists(TOKEN.filter(lambda t: t != "check_policy_service"), max_size=12), st.booleans())
def test_plain_lists_round_trip(names: list[str], commas: bool) -> None:
    text = (", " if commas else " ").join(names)
    assert [i.name for i in restrictions(text)] == [n.lower() for n in names]


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_read_without_error(text: str) -> None:
    restrictions(text)
    milters(text)
    duration(text)
    check_policy(
        {"smtpd_recipient_restrictions": text, "smtpd_relay_restrictions": text},
        {"x/inet": {"smtpd_relay_restrictions": text}},
        answer_deadline=10,
        idle_timeout=330,
    )


def test_policy_before_relay_control_in_the_recipient_list_only_warns_when_guarded() -> None:
    guarded = check_policy(
        {
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "smtpd_recipient_restrictions": "check_policy_service inet:127.0.0.1:1, "
            "reject_unauth_destination",
        },
        {},
        answer_deadline=10,
        idle_timeout=330,
    )
    assert [f.level for f in guarded] == ["warning"]
    open_relay = check_policy(
        {
            "smtpd_relay_restrictions": "",
            "smtpd_recipient_restrictions": "check_policy_service inet:127.0.0.1:1, "
            "reject_unauth_destination",
        },
        {},
        answer_deadline=10,
        idle_timeout=330,
    )
    assert [f.level for f in open_relay] == ["error"]
    nothing = check_policy(
        {"smtpd_relay_restrictions": "permit", "smtpd_recipient_restrictions": ""},
        {},
        answer_deadline=10,
        idle_timeout=330,
    )
    assert [f.level for f in nothing] == ["error", "warning"]
