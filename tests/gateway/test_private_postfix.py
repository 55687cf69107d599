"""The private Postfix helper itself: main.cf without repeated settings (so postlogd never logs
about itself at start-up and cannot block on its own socket), and a stop() that leaves no
process of the instance behind even when the instance is wedged."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import string
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.gateway.helpers import require_program
from tests.gateway.postfix import (
    Postfix,
    free_port,
    main_cf_entries,
    merge_main_cf,
    start_postfix,
    wait_until,
)

# Settings the policy-service tests override: each repeated name made every Postfix process,
# postlogd included, warn "overriding earlier entry" at start-up.
OVERRIDES = """
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions = reject_unlisted_recipient,
    permit
"""


def test_extra_settings_replace_base_ones_in_place() -> None:
    base = (
        "# comment\nmyhostname = a.example\n\nmynetworks = 127.0.0.0/8,\n  [::1]/128\nbiff = no\n"
    )
    extra = "mynetworks = 10.0.0.0/8\nbiff = yes\n  # a comment inside\nnew_one = 1"
    assert merge_main_cf(base, extra) == (
        "myhostname = a.example\nmynetworks = 10.0.0.0/8\nbiff = yes\nnew_one = 1\n"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("  continued\n", "continuation line without a setting"),
        ("myhostname\n", "not `name = value`"),
        ("= value\n", "not `name = value`"),
    ],
)
def test_bad_main_cf_lines_are_named(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        merge_main_cf("biff = no\n", text)


PRINTABLE = "".join(map(chr, range(0x21, 0x7F)))
NAMES = st.builds(
    str.__add__, st.sampled_from(string.ascii_lowercase), st.text(string.ascii_lowercase + "_")
)
FIRST = st.builds(str.__add__, st.sampled_from(PRINTABLE), st.text(PRINTABLE + " ", max_size=20))
MORE = st.builds(  # a continuation starting with `#` would be a comment
    str.__add__, st.sampled_from(PRINTABLE.replace("#", "")), st.text(PRINTABLE + " ", max_size=20)
)
VALUES = st.builds(lambda first, more: [first, *more], FIRST, st.lists(MORE, max_size=2))


def render(settings: dict[str, list[str]]) -> str:
    """Each value's first part on the name's line, the others as continuation lines."""
    return "".join(
        f"{name} = {parts[0]}\n" + "".join(f"    {part}\n" for part in parts[1:])
        for name, parts in settings.items()
    )


@given(st.dictionaries(NAMES, VALUES), st.dictionaries(NAMES, VALUES))
def test_merge_names_each_setting_once_and_extra_wins(
    base: dict[str, list[str]], extra: dict[str, list[str]]
) -> None:
    entries = list(main_cf_entries(merge_main_cf(render(base), render(extra))))
    merged = dict(entries)
    assert len(entries) == len(merged)  # no name twice: Postfix would warn about it
    assert merged == {
        name: render({name: extra.get(name, parts)}) for name, parts in {**base, **extra}.items()
    }
    assert list(merged) == list({**base, **extra})


def fill_postlog_socket(postfix: Postfix, tag: str, limit: int = 1000) -> int:
    """Send log records to the instance's postlog socket until the kernel says it is full
    (net.unix.max_dgram_qlen datagrams queued) or `limit` are sent; how many were queued."""
    path = str(postfix.root / "queue" / "public" / "postlog")
    sent = 0
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(path)
        sock.setblocking(False)
        while sent < limit:
            try:
                sock.send(f"Dec 02 12:00:00 downstream test[1]: {tag} {sent}".encode())
            except BlockingIOError:  # EAGAIN: the queue is full
                return sent
            sent += 1
    return sent


def postlogd_pids(postfix: Postfix) -> list[int]:
    return [
        pid for pid in postfix.processes() if Path(f"/proc/{pid}/comm").read_text() == "postlogd\n"
    ]


def greets(postfix: Postfix, timeout: float = 5.0) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", postfix.port), timeout=timeout) as sock:
            return sock.recv(100).startswith(b"220 ")
    except OSError:
        return False


@pytest.fixture
def instance_root() -> Iterator[Path]:
    require_program("postfix")
    root = Path(tempfile.mkdtemp(prefix="mailwarden-private-postfix-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_postlogd_starting_on_a_full_socket_drains_it(instance_root: Path) -> None:
    """The CI deadlock, made certain: postlogd (idle-exited) restarts while its socket is full.
    With a setting repeated in main.cf it warned about it through that socket and blocked for
    good, and smtpd behind it never greeted."""
    postfix = start_postfix(instance_root, OVERRIDES + "max_idle = 1s\n")
    try:
        assert wait_until(lambda: not postlogd_pids(postfix), 15.0), "postlogd did not idle out"
        master = postfix.master_pid()
        assert master is not None
        os.kill(master, signal.SIGSTOP)  # no new postlogd until the socket is full
        try:
            queued = fill_postlog_socket(postfix, "filler")
        finally:
            os.kill(master, signal.SIGCONT)
        assert queued > 0
        last = f"test[1]: filler {queued - 1}\n"
        assert wait_until(lambda: last in postfix.log_tail(), 10.0), postfix.log_tail()
        assert greets(postfix)
        log = postfix.maillog.read_text()
        assert "overriding earlier entry" not in log
        assert "postlogd[" not in log  # postlogd said nothing about itself
    finally:
        postfix.stop()


def test_stop_kills_a_wedged_instance_and_says_so(instance_root: Path) -> None:
    """postlogd stopped and its socket full: every process that logs blocks, `postfix stop`
    included. stop() must not hang, must leave no process of the instance, and must say so."""
    postfix = start_postfix(instance_root)
    postfix.stop_timeout = 2.0
    try:
        assert wait_until(lambda: bool(postlogd_pids(postfix)), 10.0)
        for pid in postlogd_pids(postfix):
            os.kill(pid, signal.SIGSTOP)
        fill_postlog_socket(postfix, "filler")
        assert not greets(postfix, timeout=1.0)  # smtpd blocks logging, before its 220
        with pytest.raises(RuntimeError, match=r"did not stop: .*postlogd\[\d+\]") as stopped:
            postfix.stop()
        assert "left: []" in str(stopped.value)
        assert postfix.processes() == []
        assert not postfix.running()
    finally:
        for pid in postfix.processes():  # whatever stop() left
            os.kill(pid, signal.SIGKILL)


def test_stop_says_when_postlogd_logged_about_itself(tmp_path: Path) -> None:
    """postlogd talking about itself is a deadlock waiting for a busy moment (the module
    docstring): stop() names it. (Shown on a stopped instance's log: making a real postlogd
    talk takes a repeated setting, and that wedges it more often than not.)"""
    postfix = Postfix(tmp_path, free_port(), "postfix")
    warning = "warning: main.cf, line 32: overriding earlier entry: biff=no"
    postfix.maillog.write_text(f"Dec 02 11:45:08 downstream postfix/postlogd[15452]: {warning}\n")
    with pytest.raises(RuntimeError, match=r"postlogd logged about itself.*overriding earlier"):
        postfix.stop()
    postfix.maillog.write_text("Dec 02 11:45:08 downstream postfix/smtpd[15453]: connect from x\n")
    postfix.stop()
