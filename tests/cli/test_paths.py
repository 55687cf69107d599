"""Start-up checks of the directories `serve` and `sink` write into: exit 2 naming the path and
the reason, before listening, instead of a 451 and a traceback on the first message."""

from __future__ import annotations

import errno
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from mailwarden.cli import run
from mailwarden.cli.paths import data_dir_used, writable_dir_problem
from mailwarden.settings import settings_from_mapping


def invoke(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    started = time.monotonic()
    code = run(list(args))
    assert time.monotonic() - started < 5, "refused at start-up, not after listening"
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def refuse_writes(monkeypatch: pytest.MonkeyPatch, number: int) -> None:
    """Files cannot be created (as on a read-only file system, or without permission: root,
    which the tests may run as, is refused neither by chmod nor by a writable mount)."""

    def mkstemp(*args: object, **kwargs: object) -> tuple[int, str]:
        raise OSError(number, "refused")

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def test_a_writable_directory_is_fine_and_created_when_missing(tmp_path: Path) -> None:
    assert writable_dir_problem(tmp_path) is None
    assert writable_dir_problem(tmp_path / "a" / "b") is None
    assert (tmp_path / "a" / "b").is_dir()
    assert list((tmp_path / "a" / "b").iterdir()) == []  # the probe is gone


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        (errno.EROFS, "it is on a read-only file system"),
        (errno.EACCES, "permission denied"),
        (errno.EPERM, "permission denied"),
        (errno.ENOSPC, "refused"),  # any other error: its own words
    ],
)
def test_unwritable_directory_reasons(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, number: int, reason: str
) -> None:
    refuse_writes(monkeypatch, number)
    assert writable_dir_problem(tmp_path) == reason


def test_a_file_is_not_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    assert writable_dir_problem(tmp_path / "file") == "it is not a directory"
    assert writable_dir_problem(tmp_path / "file" / "sub") == "a part of it is not a directory"


@pytest.mark.parametrize(
    ("config", "used"),
    [
        ({}, True),  # built-in sink, self-signed TLS, SQLite greylist
        ({"gateway": {"relay_to": "127.0.0.1:10025"}}, True),  # TLS pair, SQLite greylist
        ({"gateway": {"relay_to": "127.0.0.1:10025", "tls": {"enabled": False}}}, True),
        (
            {
                "gateway": {"relay_to": "127.0.0.1:10025", "tls": {"enabled": False}},
                "greylist": {"redis": "redis://127.0.0.1:6379/0"},
                "reports": {"postgres": "postgresql://db.example/reports"},
            },
            False,
        ),
        (  # the report store in SQLite
            {
                "gateway": {"relay_to": "127.0.0.1:10025", "tls": {"enabled": False}},
                "greylist": {"redis": "redis://127.0.0.1:6379/0"},
            },
            True,
        ),
        (  # the key of redacted failure reports
            {
                "gateway": {"relay_to": "127.0.0.1:10025", "tls": {"enabled": False}},
                "greylist": {"redis": "redis://127.0.0.1:6379/0"},
                "reports": {"postgres": "postgresql://db/r", "failure": {"enabled": True}},
            },
            True,
        ),
        (
            {
                "gateway": {"relay_to": "127.0.0.1:10025", "tls": {"enabled": False}},
                "greylist": {"enabled": False},
                "reports": {"record": False},
            },
            False,
        ),
        ({"gateway": {"tls": {"enabled": False}}, "greylist": {"enabled": False}}, True),
    ],
)
def test_data_dir_used_only_when_written_into(config: dict[str, Any], used: bool) -> None:
    assert data_dir_used(settings_from_mapping(config)) is used


def test_a_data_dir_from_the_file_is_named_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("x")
    config = tmp_path / "mailwarden.toml"
    config.write_text(f'[gateway]\ndata_dir = "{tmp_path / "file"}"\n')
    code, out, err = invoke(
        capsys, "serve", "--config", str(config), "--listen", "127.0.0.1:0", "--hostname", "h"
    )
    assert (code, out) == (2, "")
    assert err == (
        f"mailwarden: error: {config}: gateway.data_dir {tmp_path / 'file'}: cannot write "
        "there: it is not a directory\n"
    )


@pytest.mark.parametrize(
    ("where", "reason"),
    [("file", "it is not a directory"), ("file/sub", "a part of it is not a directory")],
)
def test_serve_refuses_an_unusable_data_dir(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, where: str, reason: str
) -> None:
    (tmp_path / "file").write_text("x")
    path = tmp_path / where
    code, out, err = invoke(
        capsys, "serve", "--data-dir", str(path), "--listen", "127.0.0.1:0", "--hostname", "mx.t"
    )
    assert (code, out) == (2, "")
    assert err == f"mailwarden: error: --data-dir {path}: cannot write there: {reason}\n"


@pytest.mark.parametrize(
    ("number", "reason"),
    [(errno.EROFS, "read-only file system"), (errno.EACCES, "permission denied")],
)
def test_serve_and_sink_refuse_a_read_only_or_forbidden_directory(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    number: int,
    reason: str,
) -> None:
    refuse_writes(monkeypatch, number)
    code, out, err = invoke(
        capsys, "serve", "--data-dir", str(tmp_path), "--listen", "127.0.0.1:0", "--hostname", "h"
    )
    assert (code, out) == (2, "")
    assert f"--data-dir {tmp_path}: cannot write there: " in err
    assert reason in err
    maildir = tmp_path / "Maildir"
    code, out, err = invoke(capsys, "sink", "--listen", "127.0.0.1:0", "--maildir", str(maildir))
    assert (code, out) == (2, "")
    assert err.startswith(f"mailwarden: error: --maildir {maildir}: cannot write there: ")
    assert reason in err
    assert len(err.splitlines()) == 1


def test_sink_refuses_a_maildir_whose_new_is_a_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "Maildir").mkdir()
    (tmp_path / "Maildir" / "new").write_text("not a directory")
    code, out, err = invoke(
        capsys, "sink", "--listen", "127.0.0.1:0", "--maildir", str(tmp_path / "Maildir")
    )
    assert (code, out) == (2, "")
    assert f"--maildir {tmp_path / 'Maildir' / 'new'}: cannot write there: it is not a dir" in err


def test_serve_checks_the_sink_maildir_under_the_data_dir(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "sink").write_text("a file where the sink's directory goes")
    code, out, err = invoke(
        capsys, "serve", "--data-dir", str(tmp_path), "--listen", "127.0.0.1:0", "--hostname", "h"
    )
    assert (code, out) == (2, "")
    assert "--data-dir (sink Maildir)" in err
    assert "a part of it is not a directory" in err
