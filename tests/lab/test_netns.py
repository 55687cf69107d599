"""The lab's network and its teardown: whatever a run left (namespaces with programs still in
them, /etc/netns entries, the lab directory) goes, and nothing of another lab or of the machine
is touched."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lab.netns import (
    NETNS_ETC,
    Host,
    Network,
    lab_namespaces,
    remove_lab,
    teardown,
)
from lab.topology import HOSTS, NAMESERVER
from tests.lab.helpers import require_lab

PROJECT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("prefix", ["", "Lab", "a-b", "toolongprefix", "9lab", "lab_1", "lab 1"])
def test_a_prefix_must_be_short_lower_case_letters_and_digits(prefix: str) -> None:
    with pytest.raises(ValueError, match="lab prefix"):
        Network(prefix, HOSTS, nameserver=NAMESERVER)


@given(st.text(max_size=12))
def test_any_prefix_is_refused_or_fits_an_interface_name(prefix: str) -> None:
    try:
        network = Network(prefix, HOSTS, nameserver=NAMESERVER)
    except ValueError:
        return
    assert all(len(network.namespace(h.name)) <= 15 for h in HOSTS)
    assert network.command("a", ["true"]) == ["ip", "netns", "exec", f"{prefix}-a", "true"]


def _leave_behind(prefix: str) -> subprocess.Popen[bytes]:
    """What an interrupted run leaves: a namespace with a program in it, an /etc/netns entry."""
    network = Network(prefix, [Host("h", ("10.99.9.9",))], nameserver=NAMESERVER)
    network.create()
    return network.popen("h", ["sleep", "300"], start_new_session=True)


def test_teardown_removes_what_an_interrupted_run_left() -> None:
    require_lab()
    sleeper = _leave_behind("mwtdown")
    other = _leave_behind("mwtdownx")  # another lab whose name starts the same way
    try:
        assert lab_namespaces("mwtdown") == ["mwtdown-h", "mwtdown-net"]
        assert (NETNS_ETC / "mwtdown-h" / "resolv.conf").read_text().count(NAMESERVER) == 1
        assert teardown("mwtdown") == ["mwtdown-h", "mwtdown-net"]
        assert lab_namespaces("mwtdown") == []
        assert not (NETNS_ETC / "mwtdown-h").exists()
        assert sleeper.wait(timeout=10) == -signal.SIGTERM  # the program left there is ended
        assert lab_namespaces("mwtdownx") == ["mwtdownx-h", "mwtdownx-net"]
        assert other.poll() is None
    finally:
        teardown("mwtdown")
        teardown("mwtdownx")
        for process in (sleeper, other):
            process.kill()
            process.wait(timeout=10)
    assert teardown("mwtdown") == []  # nothing left: a second run has nothing to do


def test_make_lab_clean_removes_the_namespaces_and_the_directory() -> None:
    require_lab()
    sleeper = _leave_behind("mwtclean")
    root = Path(tempfile.mkdtemp(prefix="lab-clean-"))
    (root / "b" / "postfix").mkdir(parents=True)
    # the system's Python, without the project's virtualenv: lab-clean needs only the stdlib
    python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
    try:
        result = subprocess.run(
            [python, "-m", "lab", "clean", "--prefix", "mwtclean", "--dir", str(root)],
            capture_output=True,
            text=True,
            cwd=PROJECT,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"lab: removed 2 namespaces and {root}\n"
        assert lab_namespaces("mwtclean") == []
        assert not root.exists()
        assert sleeper.wait(timeout=10) == -signal.SIGTERM
    finally:
        remove_lab("mwtclean", root)
        sleeper.kill()
        sleeper.wait(timeout=10)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--only", "nope"], "lab: no scenario nope (there are: legit, spoof, listed, list, "),
        (["--prefix", "Bad-Prefix"], "lab: lab prefix 'Bad-Prefix'"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(args: list[str], error: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lab", *args, "--dir", tempfile.mkdtemp(prefix="lab-args-")],
        capture_output=True,
        text=True,
        cwd=PROJECT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(error), result.stderr
    assert result.stderr.count("\n") == 1
