"""Every command and subcommand, driven with hostile arguments: no exit 70, no hang.

The commands are enumerated from the click group, so a new command is covered the day it is
added. For each, hypothesis builds command lines from the command's own parameters: numbers
that are not numbers (nan, inf, -0, 1e309, huge integers, non-ASCII digits), addresses with
zone ids, out-of-range octets or embedded NULs, paths that are files, directories, missing,
unreadable, read-only, binary or empty, names with markup, escapes and line breaks. Every
invocation runs in-process through `mailwarden.cli.run` with a per-invocation timeout; DNS is
answered from an empty zone file, so nothing touches the network. `serve` and `sink` start
their listener and stop at once instead of waiting for a signal, and so do `http` and
`serve --http`.

The promise checked is the README's: exit 0, 1, 2 or 3; exit 2 is one error line on stderr
(after any warnings); never 70, never a traceback, never a hang.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailwarden.cli import cli, run
from mailwarden.cli.common import BoundedInt, FiniteFloat
from mailwarden.dkim import generate_key, write_private_key
from mailwarden.gateway import Gateway
from mailwarden.pipeline import Pipeline

lifecycle = importlib.import_module("mailwarden.cli.lifecycle")

TIMEOUT = 30.0  # seconds one invocation may take before it counts as a hang
EXAMPLES = int(os.environ.get("MAILWARDEN_HOSTILE_EXAMPLES", "80"))  # per command; more to hunt
DOCUMENTED_EXITS = {0, 1, 2, 3}

MESSAGE = (
    b"Received: from mail.example.com (mail.example.com [192.0.2.1]) by mx.example.net;"
    b" Mon, 1 Jan 2024 00:00:00 +0000\r\n"
    b"From: Alice <alice@example.com>\r\nTo: bob@example.net\r\nSubject: hi\r\n"
    b"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=s1; h=from; bh=abc; b=abc\r\n"
    b"Authentication-Results: mx.example.net; spf=pass smtp.mailfrom=example.com\r\n"
    b"\r\nHello.\r\n"
)


def leaf_commands(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from leaf_commands(sub, (*path, name))
    else:
        yield path


COMMANDS = list(leaf_commands(cli))


def resolve(path: tuple[str, ...]) -> click.Command:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return command


@dataclass(frozen=True)
class Hostile:
    """The values, by kind; paths point into a directory made once for the module."""

    files: dict[str, str]
    zone: str

    def numbers(self) -> list[str]:
        return [
            "nan", "-nan", "inf", "-inf", "Infinity", "1e309", "-1e309", "1e300", "-0", "0",
            "-1", "1.5", "10" * 40, "9" * 5000, "٣", "²", "", " ", "0x10", "1_0", "1024", "30",
        ]  # fmt: skip

    def addresses(self) -> list[str]:
        return [
            "192.0.2.1", "2001:db8::1", "fe80::1%eth0", "::ffff:192.0.2.1%lo", "999.1.1.1",
            "1.2.3", "256.256.256.256", "01.2.3.4", "192.0.2.1\x00", "192.0.2.1/33",
            "[2001:db8::1]", "::", "0.0.0.0", "192.0.2.0/24", "2001:db8::/47", "1.2.3.4.",
        ]  # fmt: skip

    def names(self) -> list[str]:
        return [
            "example.com", "mail.example.com", "a..b", "-bad-.com", "x" * 64 + ".example",
            "a" * 300, "ü.example", "xn--", "[192.0.2.1]", "a b", "", " ", "localhost", ".",
            "alice@example.com", "a@a..b", "@", "<>", "v=spf1 +all", "v=spf1 include:%{i}",
            "v=spf1 " + "include:a.example " * 20 + "-all", "[/]", "[bold]x", "\x1b[2J",
            "a\r\nb", "%", "\udce3.example", "from,x header", "from:subject", "zen", "nosuch",
            "ip:bl.example", "url:x", "spf:example.com", "net:192.0.2.0/24",
        ]  # fmt: skip

    def endpoints(self) -> list[str]:
        return [
            "127.0.0.1:0", "[::1]:0", "127.0.0.1:99999", "127.0.0.1:-1", "127.0.0.1:٣",
            "nowhere", "", "999.1.1.1:0", "[fe80::1%lo]:0", "127.0.0.1:1e309", "127.0.0.1",
            "redis://127.0.0.1:1/0", "redis://", "http://example.invalid",
        ]  # fmt: skip

    def times(self) -> list[str]:
        return [
            "nan", "inf", "1e309", "-1e309", "1e300", "-1e300", "1700000000",
            "2024-01-01", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "yesterday",
        ]  # fmt: skip

    def paths(self) -> list[str]:
        return [*self.files.values(), "-", "/dev/null", "x" * 300, "/" + "d/" * 3000]

    def everything(self) -> list[str]:
        return sorted(
            {
                *self.numbers(),
                *self.addresses(),
                *self.names(),
                *self.endpoints(),
                *self.times(),
                *self.paths(),
            }
        )


def make_files(root: Path) -> dict[str, str]:
    root.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}

    def put(name: str, data: bytes) -> None:
        path = root / name
        path.write_bytes(data)
        files[name] = path

    put("good.eml", MESSAGE)
    put("bare-lf.eml", MESSAGE.replace(b"\r\n", b"\n"))
    put("empty", b"")
    put("binary", bytes(range(256)) * 8)
    put("latin1.eml", b"From: J\xe9r\xf4me <j@example.com>\r\nSubject: \xe3\r\n\r\nbody\r\n")
    put("headerless.eml", b"no header here\r\n\r\n")
    put("long-line", b"X-Long: " + b"a" * 200_000 + b"\r\n\r\n")
    put("good.jsonl", b'{"ip": "192.0.2.1", "mail_from": "a@example.com", "helo": "h.example"}\n')
    put(
        "manifest.jsonl",
        b'{"file": "good.eml", "ip": "192.0.2.1", "helo": "h.example"}\n'
        b'\n{"file": "binary", "ip": "fe80::1%eth0", "helo": 1}\n[]\n\xff\n'
        b'{"file": "/", "ip": "999.1.1.1", "helo": "h", "rcpt": [1]}\n',
    )
    put("zone", b'$ORIGIN example.com.\n@ 300 IN TXT "v=spf1 -all"\n')
    put("bad.zone", b"this is not a zone file\n\x00\xff\n")
    put("config.toml", b'[dnsbl]\nuse = []\n[gateway]\nhostname = "mx.example.net"\n')
    put("bad.toml", b"[policy\nscores = {\n\xff\xfe")
    put("numbers.toml", b"[policy.thresholds]\nreject = nan\n[greylist]\nmin_delay = inf\n")
    put("greylist.sqlite3", b"not a database " * 50)
    put("unreadable", b"secret")
    (root / "unreadable").chmod(0)
    (root / "dir").mkdir(exist_ok=True)
    files["dir"] = root / "dir"
    (root / "read-only").mkdir(exist_ok=True)
    (root / "read-only").chmod(0o555)
    files["read-only"] = root / "read-only"
    files["missing"] = root / "missing" / "file"
    files["under-a-file"] = root / "empty" / "sub"
    write_private_key(root / "rsa.pem", generate_key("rsa", 1024))
    files["rsa.pem"] = root / "rsa.pem"
    write_private_key(root / "ed.pem", generate_key("ed25519"))
    files["ed.pem"] = root / "ed.pem"
    return {name: str(path) for name, path in files.items()}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    """The hostile files, a working directory of their own (keygen and greylist write into
    it), empty standard input, and serve/sink that stop as soon as they listen."""
    root = tmp_path_factory.mktemp("hostile")
    files = make_files(root / "files")
    zone = root / "empty.zone"
    zone.write_text("$ORIGIN .\n$TTL 300\n")
    work = root / "work"
    work.mkdir()

    async def listen_once(
        gateway: Gateway, announce: Any, pipeline: Any = None, rotator: Any = None, **_: Any
    ) -> None:
        async with gateway:
            announce()
        if isinstance(pipeline, Pipeline):
            await pipeline.drain()

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(work)
        patch.setattr(lifecycle, "run_until_signalled", listen_once)
        patch.delenv("MAILWARDEN_DEBUG", raising=False)
        yield Hostile(files, str(zone))


def value_strategy(param: click.Parameter, hostile: Hostile) -> st.SearchStrategy[str]:
    """Values for one parameter: mostly of its kind, sometimes anything at all."""
    name = param.name or ""
    kind: list[str]
    if isinstance(param.type, FiniteFloat | BoundedInt | click.types._NumberParamTypeBase):
        kind = hostile.numbers()
    elif isinstance(param.type, click.Choice):
        kind = [str(c) for c in param.type.choices] + ["", "NOPE", "rsa\x00"]
    elif name in {"ip", "our_address", "subject", "target", "ip4", "ip6"}:
        kind = hostile.addresses() + hostile.names()
    elif name in {
        "file", "config", "config_file", "config_dir", "key_file", "batch", "dns_zones", "output",
    }:  # fmt: skip
        kind = hostile.paths()
    elif name in {"data_dir", "maildir"}:
        kind = [*hostile.paths(), hostile.files["dir"] + "/data"]
    elif name in {"listen", "relay_to", "dns_servers", "redis_url", "http_listen"}:
        kind = hostile.endpoints()
    elif name == "now_text":
        kind = hostile.times()
    else:
        kind = hostile.names()
    return st.one_of(st.sampled_from(kind), st.sampled_from(hostile.everything()))


@st.composite
def command_lines(draw: st.DrawFn, path: tuple[str, ...], hostile: Hostile) -> list[str]:
    command = resolve(path)
    names = {p.name for p in command.params}
    argv = list(path)
    if "dns_zones" in names:  # answers from an empty zone: never the network
        argv += ["--dns-zone", hostile.zone]
    if path == ("serve",):  # never a fixed port, never a slow host name lookup
        argv += ["--listen", "127.0.0.1:0", "--hostname", "mx.test"]
    if path in {("sink",), ("http",), ("policy",), ("milter",)}:
        argv += ["--listen", "127.0.0.1:0"]
    if path == ("submit",):
        argv += ["--listen", "127.0.0.1:0", "--listen-tls", "127.0.0.1:0", "--hostname", "mx.test"]
    for param in command.params:
        if isinstance(param, click.Argument):
            if param.required or draw(st.booleans()):
                argv.append(draw(value_strategy(param, hostile)))
            continue
        assert isinstance(param, click.Option)
        if param.is_flag:
            flags = [*param.opts, *param.secondary_opts]
            if draw(st.booleans()):
                argv.append(draw(st.sampled_from(flags)))
            continue
        repeat = draw(st.integers(0, 2)) if param.multiple else int(draw(st.booleans()))
        if param.required:
            repeat = max(repeat, 1)
        for _ in range(repeat):
            argv += [param.opts[-1], draw(value_strategy(param, hostile))]
    return argv


def invoke(argv: list[str]) -> tuple[int, str, str]:
    """`run(argv)` in a thread with a timeout; stdout strict UTF-8 (as on most systems),
    stdin empty. A hang fails the test (the thread is left behind, as a daemon)."""
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    stderr = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace")
    stdin = io.TextIOWrapper(io.BytesIO(b""), encoding="utf-8")
    outcome: dict[str, int] = {}

    def target() -> None:
        outcome["code"] = run(argv)

    saved = sys.stdout, sys.stderr, sys.stdin
    sys.stdout, sys.stderr, sys.stdin = stdout, stderr, stdin
    try:
        worker = threading.Thread(target=target, daemon=True)
        worker.start()
        worker.join(TIMEOUT)
    finally:
        sys.stdout, sys.stderr, sys.stdin = saved
    assert not worker.is_alive(), f"hangs: mailwarden {argv!r}"
    with contextlib.suppress(ValueError):
        stdout.flush()
        stderr.flush()
    out = stdout.buffer.getvalue().decode("utf-8")  # type: ignore[attr-defined]
    err = stderr.buffer.getvalue().decode("utf-8", "replace")  # type: ignore[attr-defined]
    return outcome.get("code", -1), out, err


def test_every_command_is_covered() -> None:
    """The enumeration sees every leaf command (a new one joins without a change here)."""
    assert {" ".join(p) for p in COMMANDS} >= {
        "analyze", "check", "dkim keygen", "dkim sign", "dkim verify", "dmarc record",
        "dnsbl", "domain check", "greylist allow", "greylist forget", "greylist list",
        "helo", "http", "iprev", "milter", "serve", "sink", "spf build", "spf check", "spf explain",
        "policy", "postfix config", "postfix check",
    }  # fmt: skip


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_command_exits_70_or_hangs(
    path: tuple[str, ...], hostile: Hostile, data: st.DataObject
) -> None:
    argv = data.draw(command_lines(path, hostile), label="argv")
    code, out, err = invoke(argv)
    where = f"mailwarden {' '.join(map(repr, argv))}"
    assert "Traceback" not in err, f"{where}\n{err}"
    assert "internal error" not in err, f"{where}\n{err}"
    assert code in DOCUMENTED_EXITS, f"{where}: exit {code}\n{err}"
    if code == 2:  # the error is one line, the last (warnings may come before it)
        assert out == "", where
        assert err, where
        *warnings, error = err.splitlines()
        assert error.startswith("mailwarden: error: "), f"{where}\n{err}"
        assert all(w.startswith("mailwarden: warning: ") for w in warnings), f"{where}\n{err}"
    assert os.getcwd().endswith("work")  # no command changed the working directory
