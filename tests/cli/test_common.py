"""What every command shares: checked numbers, JSON output that is always UTF-8, batch lines,
tables that stay whole in a pipe, the DNS status line, and the exit statuses as documented."""

from __future__ import annotations

import asyncio
import io
import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from rich.console import Console
from tests.testdata import PROJECT_ROOT

from mailwarden.cli import cli, common, run
from mailwarden.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_DNS_FAILED,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_PARTIAL,
    BoundedInt,
    FiniteFloat,
    LineError,
    WaitStatus,
    clean_text,
    print_json,
    read_line,
    run_batch,
)
from mailwarden.dns import Answer, RdType, StaticResolver

EMPTY_ZONE = "$ORIGIN .\n$TTL 300\n"


def invoke(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- numbers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", 1.0), ("0.5", 0.5), (" 2.5 ", 2.5), ("1e1", 10.0), ("10", 10.0), ("-0", None)],
)
def test_finite_float_accepts(text: str, expected: float | None) -> None:
    kind = FiniteFloat(min=0, max=10)
    value = kind.convert(text, None, None)
    assert value == (expected if expected is not None else 0.0)
    assert str(value) != "-0.0"  # -0 is 0


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("nan", "not a finite number"),
        ("NaN", "not a finite number"),
        ("-nan", "not a finite number"),
        ("inf", "not a finite number"),
        ("-inf", "not a finite number"),
        ("Infinity", "not a finite number"),
        ("1e309", "not a finite number"),
        ("-1e309", "not a finite number"),
        ("11", "range"),
        ("-1", "range"),
        ("٣", "ASCII digits only"),
        ("²", "ASCII digits only"),
        ("", "not a valid float"),
        ("1,5", "not a valid float"),
    ],
)
def test_finite_float_refuses(text: str, reason: str) -> None:
    with pytest.raises(click.BadParameter) as caught:
        FiniteFloat(min=0, max=10).convert(text, None, None)
    assert reason in str(caught.value)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("nan", "not a valid integer"),
        ("1.5", "not a valid integer"),
        ("11", "range"),
        ("9" * 5000, "not a valid integer"),  # beyond int()'s digit limit
        ("10" * 40, "range"),
        ("٣", "ASCII digits only"),
    ],
)
def test_bounded_int_refuses(text: str, reason: str) -> None:
    with pytest.raises(click.BadParameter) as caught:
        BoundedInt(min=0, max=10).convert(text, None, None)
    assert reason in str(caught.value)


DNS_COMMANDS = [
    ["iprev", "192.0.2.1"],
    ["helo", "mail.example.com", "--ip", "192.0.2.1"],
    ["dnsbl", "192.0.2.1"],
    ["spf", "check", "--ip", "192.0.2.1", "--helo", "mail.example.com"],
    ["spf", "explain", "example.com"],
    ["spf", "build", "--include", "example.com", "--resolve"],
    ["dmarc", "record", "example.com"],
    ["domain", "check", "example.com"],
    ["dkim", "verify", "-"],
    ["analyze", "-"],
    ["check", "-", "--ip", "192.0.2.1", "--helo", "mail.example.com"],
]


@pytest.mark.parametrize("command", DNS_COMMANDS, ids=lambda c: " ".join(c[:2]))
@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--dns-timeout", "nan"),
        ("--dns-timeout", "inf"),
        ("--dns-timeout", "-inf"),
        ("--dns-timeout", "1e309"),
        ("--dns-timeout", "1e300"),
        ("--dns-timeout", "0"),
        ("--dns-retries", "-1"),
        ("--dns-retries", "1" * 40),
    ],
)
def test_every_dns_command_refuses_bad_numbers_at_once(
    capsys: pytest.CaptureFixture[str], command: list[str], option: str, value: str
) -> None:
    """`--dns-timeout nan` used to hang forever: it is refused before any query."""
    started = time.monotonic()
    code, out, err = invoke(capsys, *command, option, value, "--dns-server", "192.0.2.53")
    assert (code, out) == (EXIT_BAD_INPUT, "")
    assert option in err
    assert len(err.splitlines()) == 1
    assert time.monotonic() - started < 2


def test_every_number_option_is_checked() -> None:
    """No float or int option escapes the checked types (click's accept nan or "٣")."""

    def walk(group: click.Command, path: str) -> Iterator[tuple[str, click.Parameter]]:
        for param in group.params:
            yield path, param
        if isinstance(group, click.Group):
            for name, sub in group.commands.items():
                yield from walk(sub, f"{path} {name}")

    numeric = [(p, param) for p, param in walk(cli, "mailwarden") if _is_numeric(param.type)]
    assert numeric, "the walk found no number option at all"
    for path, param in numeric:
        assert isinstance(param.type, FiniteFloat | BoundedInt), f"{path} {param.name}"


def _is_numeric(kind: click.ParamType) -> bool:
    return isinstance(kind, click.types._NumberParamTypeBase)


# -- JSON output -----------------------------------------------------------------------------


def test_print_json_escapes_non_utf8_bytes_once(capsys: pytest.CaptureFixture[str]) -> None:
    raw = b"ex\xe3mple.com".decode("utf-8", "surrogateescape")
    print_json({"domain": raw, "list": [raw], raw: 1, "fine": "é"})
    out = capsys.readouterr().out
    out.encode("utf-8")  # valid UTF-8, whatever the input held
    assert json.loads(out) == {
        "domain": "ex\\xe3mple.com",
        "list": ["ex\\xe3mple.com"],
        "ex\\xe3mple.com": 1,
        "fine": "é",
    }
    assert clean_text("plain") == "plain"


def test_batch_error_shows_a_non_utf8_byte_escaped_once(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The JSON used to carry \\\\xe3 (escaped twice): now the text \\xe3, once."""
    (tmp_path / "m.eml").write_bytes(b"From: a@example.com\r\nbad\xe3 line\r\n\r\nbody\r\n")
    manifest = tmp_path / "batch.jsonl"
    manifest.write_text('{"file": "m.eml", "ip": "192.0.2.1", "helo": "h.example"}\n')
    zone = tmp_path / "empty.zone"
    zone.write_text(EMPTY_ZONE)
    code, out, _ = invoke(
        capsys, "check", "--batch", str(manifest), "--dns-zone", str(zone), "--json"
    )
    assert code == EXIT_PARTIAL
    error = json.loads(out)["error"]
    assert error == "header line 2 is not a header field: 'bad\\xe3 line'"
    assert error.count("\\") == 1  # one backslash in the text (two in the JSON)


# -- batch lines -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"\n", "empty line"),
        (b"   \t\r\n", "empty line"),
        (b"", "empty line"),
        (b'{"ip": "\xe3"}\n', "not UTF-8 text (byte 9)"),
        (b"not json\n", "not JSON: Expecting value: line 1 column 1"),
        (b"[1, 2]\n", "expected a JSON object"),
        (b'"text"\n', "expected a JSON object"),
        (b"[" * 100_000 + b"\n", "not JSON"),
    ],
)
def test_read_line_says_what_is_wrong(raw: bytes, error: str) -> None:
    with pytest.raises(LineError) as caught:
        read_line(7, raw)
    assert error in str(caught.value)


def test_run_batch_goes_on_after_every_kind_of_bad_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def evaluate(number: int, item: dict[str, object]) -> dict[str, object]:
        if item.get("bug"):
            raise ZeroDivisionError("a bug on this line")
        if item.get("bad"):
            raise LineError("bad field", file="x.eml")
        return {"ok": number}

    stream = io.BytesIO(b'{"a": 1}\n\n\xff\xfe\n{"bad": true}\n{"bug": true}\nnope\n{"a": 2}')
    code = run_batch(stream, evaluate, concurrency=2, error_fields={"file": None})
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines == [
        {"ok": 1},
        {"line": 2, "file": None, "error": "empty line"},
        {"line": 3, "file": None, "error": "not UTF-8 text (byte 1)"},
        {"line": 4, "file": "x.eml", "error": "bad field"},
        {"line": 5, "file": None, "error": "internal error: ZeroDivisionError: a bug on this line"},
        {"line": 6, "file": None, "error": lines[5]["error"]},
        {"ok": 7},
    ]
    assert lines[5]["error"].startswith("not JSON: ")
    assert code == EXIT_INTERNAL  # a bug stays a bug, but the batch went to its end
    assert "internal error on 1 line(s)" in err


def test_run_batch_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    async def evaluate(number: int, item: dict[str, object]) -> dict[str, object]:
        return {"ok": number}

    assert run_batch(io.BytesIO(b"{}\n{}\n"), evaluate, concurrency=4) == EXIT_OK
    assert run_batch(io.BytesIO(b"{}\n\n{}\n"), evaluate, concurrency=4) == EXIT_PARTIAL
    capsys.readouterr()


# -- tables in a pipe ------------------------------------------------------------------------


def test_piped_tables_keep_every_value_whole(capsys: pytest.CaptureFixture[str]) -> None:
    """`dnsbl --show-lists | cat` used to lose the DQS zone names in wrapped cells."""
    code, out, _ = invoke(capsys, "dnsbl", "--show-lists")
    assert code == 0
    code, data, _ = invoke(capsys, "dnsbl", "--show-lists", "--json")
    for row in json.loads(data):
        for value in (row["zone"], row["needs_key"] or "nothing (free, through your own resolver)"):
            assert any(value in line for line in out.splitlines()), value
    assert "KEY.zen.dq.spamhaus.net" in out
    assert "KEY.dbl.dq.spamhaus.net" in out


def test_piped_console_is_wide_and_plain() -> None:
    console = common.console()
    assert not console.is_terminal  # under pytest, stdout is captured
    assert console.width == common.PIPE_WIDTH
    assert not console.color_system


# -- the DNS status line ---------------------------------------------------------------------


class SlowResolver:
    """Answers nothing, slowly."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.inner = StaticResolver()

    async def resolve(self, name: str, rdtype: RdType) -> Answer:
        await asyncio.sleep(self.delay)
        return await self.inner.resolve(name, rdtype)


def terminal() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=True, width=100), buffer


async def _wait_on(resolver: WaitStatus, *names: str) -> None:
    await asyncio.gather(*(resolver.resolve(n, RdType.TXT) for n in names), return_exceptions=True)


def test_status_line_says_what_a_long_query_waits_for() -> None:
    console, buffer = terminal()
    resolver = WaitStatus(SlowResolver(0.4), console, delay=0.1)
    asyncio.run(_wait_on(resolver, "slow.example", "other.example"))
    shown = buffer.getvalue()
    assert "waiting for DNS: slow.example TXT" in shown
    assert "1 more query" in shown
    assert resolver._live is None  # gone once nothing is pending


def test_no_status_line_for_a_short_wait() -> None:
    console, buffer = terminal()
    resolver = WaitStatus(SlowResolver(0.01), console, delay=0.3)
    asyncio.run(_wait_on(resolver, "fast.example"))
    assert "waiting for DNS" not in buffer.getvalue()


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A UDP socket that never answers: every query waits its whole timeout."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


SLOW_IPREV = ["iprev", "192.0.2.1", "--dns-timeout", "0.4", "--dns-retries", "0"]


def test_command_shows_the_status_on_a_terminal_stderr(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, silent_server: str
) -> None:
    console, buffer = terminal()
    monkeypatch.setattr(common, "status_console", lambda: console)
    monkeypatch.setattr(common, "STATUS_DELAY", 0.1)
    code, out, err = invoke(capsys, *SLOW_IPREV, "--dns-server", silent_server)
    assert code == 0
    assert "waiting for DNS: 1.2.0.192.in-addr.arpa PTR" in buffer.getvalue()
    assert "waiting" not in out + err  # stdout and the real stderr untouched


def test_command_shows_no_status_when_stderr_is_not_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, silent_server: str
) -> None:
    monkeypatch.setattr(common, "STATUS_DELAY", 0.1)
    assert common.status_console() is None  # captured stderr is no terminal
    code, out, err = invoke(capsys, *SLOW_IPREV, "--dns-server", silent_server)
    assert code == 0
    assert "waiting" not in out + err
    assert "\x1b" not in out + err


# -- arguments and exit statuses -------------------------------------------------------------


def test_nul_in_an_argument_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = invoke(capsys, "dkim", "verify", "a\x00b.eml")
    assert (code, out) == (EXIT_BAD_INPUT, "")
    assert err == "mailwarden: error: argument 3 contains a NUL character\n"


def test_readme_and_help_list_the_same_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    documented = {int(n) for n in re.findall(r"^- (\d+): ", readme, re.MULTILINE)}
    code, help_text, _ = invoke(capsys, "--help")
    assert code == 0
    in_help = {int(n) for n in re.findall(r"^\s+(\d+)\s{2,}\S", help_text, re.MULTILINE)}
    constants = {EXIT_OK, EXIT_PARTIAL, EXIT_BAD_INPUT, EXIT_DNS_FAILED, EXIT_INTERNAL}
    assert documented == in_help == constants
    assert "`dmarc record` could not look the record up" in readme
    assert "mailwarden sink --listen" in readme


def test_an_error_is_one_line_whatever_the_input_holds(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A file name with a line break used to split the error over two lines (found by the
    hostile-arguments test)."""
    missing = str(tmp_path / "a\r\nb")
    code, out, err = invoke(capsys, "dkim", "verify", missing)
    assert (code, out) == (EXIT_BAD_INPUT, "")
    assert err == f"mailwarden: error: cannot read {tmp_path}/a\\r\\nb: No such file or directory\n"


@pytest.mark.parametrize(
    ("text", "line"),
    [("plain", "plain"), ("a\nb", "a\\nb"), ("tab\there", "tab\\there"), ("\x1b[2J", "\\x1b[2J")],
)
def test_one_line(text: str, line: str) -> None:
    assert common.one_line(text) == line


def test_a_server_gets_no_status_line(monkeypatch: pytest.MonkeyPatch) -> None:
    console, _ = terminal()
    monkeypatch.setattr(common, "status_console", lambda: console)
    options = common.DNSOptions(None, ("192.0.2.53",), (), 1.0, 0)
    assert isinstance(options.build().inner, WaitStatus)  # type: ignore[attr-defined]
    assert not isinstance(options.build(status=False).inner, WaitStatus)  # type: ignore[attr-defined]
