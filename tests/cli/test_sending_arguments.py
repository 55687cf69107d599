"""Every argument of the new commands (dkim rotate, dkim keys, srs) driven with hostile
values: the exit status is 0, 1 or 2 (with one line on stderr), never 70, and nothing hangs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailwarden.cli import run

hostile = st.one_of(
    st.text(max_size=80),
    st.sampled_from(
        [
            "",
            "-",
            "--",
            "a.example",
            "A.EXAMPLE.",
            "xn--",
            "xn--zz",
            "com",
            "..",
            "a..b",
            "\x00",
            "\udcff",
            "0",
            "-1",
            "nan",
            "inf",
            "1e309",
            "2024-13-40",
            "unix:",
            "[::1]:x",
            "127.0.0.1:99999",
            "127.0.0.1:0",
            "SRS0=AAAA=AA=a.b=c@d.e",
            "SRS1=x",
            "@",
            "a@",
            "x" * 5000,
            "../../etc/passwd",
            "/dev/null",
            "{algorithm}",
        ]
    ),
)


def check(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code = run(argv)
    captured = capsys.readouterr()
    assert code in (0, 1, 2), (argv, captured.err)
    if code == 2:
        assert captured.err.count("\n") == 1, captured.err
        assert "Traceback" not in captured.err


@given(domain=hostile, now=hostile)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_dkim_rotate(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, domain: str, now: str
) -> None:
    check(
        capsys,
        [
            "dkim",
            "rotate",
            "--domain",
            domain,
            "--now",
            now,
            "--data-dir",
            str(tmp_path),
            "--dns-zone",
            "/dev/null",
            "--json",
        ],
    )


@given(domain=hostile, data_dir=hostile)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_dkim_keys(capsys: pytest.CaptureFixture[str], domain: str, data_dir: str) -> None:
    check(capsys, ["dkim", "keys", "--domain", domain, "--data-dir", data_dir or "x"])


@given(address=hostile, domain=hostile, which=st.sampled_from(["forward", "reverse"]))
@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_srs_one_address(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, address: str, domain: str, which: str
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s\n")
    check(capsys, ["srs", "--srs-domain", domain, "--secret-file", str(secret), which, address])
    check(
        capsys,
        [
            "srs",
            "--srs-domain",
            "srs.example.net",
            "--secret-file",
            str(secret),
            "--json",
            which,
            address,
        ],
    )


@given(listen=hostile)
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_srs_listen_refuses_bad_addresses(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, listen: str
) -> None:
    """Only addresses that cannot be served: a valid one would start the service."""
    secret = tmp_path / "secret"
    secret.write_text("s\n")
    if listen.startswith("unix:") and len(listen) > 5 and "\x00" not in listen:
        listen = "unix:"  # a real path would be served
    try:
        from mailwarden.socketmap import parse_listen

        parse_listen(listen)
    except ValueError:
        pass
    else:
        return
    check(
        capsys,
        [
            "srs",
            "--srs-domain",
            "srs.example.net",
            "--secret-file",
            str(secret),
            "--listen",
            listen,
        ],
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["srs"], "give --listen"),
        (["srs", "forward", "a@b.example"], "no SRS domain"),
        (
            [
                "srs",
                "--srs-domain",
                "x.example",
                "--secret-file",
                "/nonexistent/s",
                "forward",
                "a@b.c",
            ],
            "cannot read",
        ),
        (["srs", "--srs-domain", "not a domain", "forward", "a@b.c"], "--srs-domain"),
        (["srs", "--listen", "nowhere", "--srs-domain", "x.example"], "bad --listen"),
        (
            ["srs", "--tcp-forward", "1.2.3.4:70000", "--srs-domain", "x.example"],
            "bad --tcp-forward",
        ),
    ],
)
def test_srs_usage_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], message: str
) -> None:
    code = run([*argv[:1], "--data-dir", str(tmp_path), *argv[1:]])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert err.count("\n") == 1


def test_srs_one_address_exit_status(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("tops3cr3t\n")
    base = ["srs", "--srs-domain", "srs.example.net", "--secret-file", str(secret)]
    assert run([*base, "forward", "alice@a.example"]) == 0
    address = capsys.readouterr().out.strip()
    assert address.startswith("SRS0=")
    assert run([*base, "reverse", address]) == 0
    assert capsys.readouterr().out.strip() == "alice@a.example"
    assert run([*base, "--json", "reverse", "SRS0=AAAA=AA=a.example=alice@srs.example.net"]) == 1
    out = capsys.readouterr().out
    assert '"reason_code": "' in out
