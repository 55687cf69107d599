"""`mailwarden dkim rotate` and `mailwarden dkim keys` through every stage, asking a real DNS
server on loopback whose zone the test changes between runs (as an operator publishing the
records would), with the clock given by --now."""

from __future__ import annotations

import asyncio
import json
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.dns.dnsserver import DNSTestServer

from mailwarden.cli import run
from mailwarden.dkim import txt_strings
from mailwarden.signing import DirectoryStore


@pytest.fixture
def dns_server() -> Iterator[DNSTestServer]:
    """The loopback DNS server, answering from its own thread and event loop."""
    server = DNSTestServer(ttl=0)
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def publish(server: DNSTestServer, name: str, record: str) -> None:
    server.records[(name + ".", "TXT")] = [" ".join(f'"{s}"' for s in txt_strings(record))]


def unpublish(server: DNSTestServer, name: str) -> None:
    server.records.pop((name + ".", "TXT"), None)


def cli(
    capsys: pytest.CaptureFixture[str], server: DNSTestServer, data: Path, *args: str
) -> dict[str, Any]:
    code = run(["dkim", *args, "--data-dir", str(data), "--dns-server", server.address, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.err == ""
    return json.loads(captured.out)  # type: ignore[no-any-return]


def stages(result: dict[str, Any]) -> dict[str, str]:
    return {k["selector"]: k["stage"] for k in result["keys"]}


def events(result: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["event"], e["selector"]) for e in result["events"]]


def test_every_stage_through_the_command_line(
    capsys: pytest.CaptureFixture[str], dns_server: DNSTestServer, tmp_path: Path
) -> None:
    server = dns_server
    server.add("example.com", "SOA", "ns.test. hostmaster.test. 1 3600 600 86400 60")
    # the first keys of example.com: printed, waiting for DNS
    out = cli(capsys, server, tmp_path, "rotate", "--domain", "Example.COM", "--now", "2024-05-01")
    assert events(out) == [("created", "rsa202405"), ("created", "ed25519202405")]
    assert stages(out) == {"rsa202405": "pending", "ed25519202405": "pending"}
    created = {e["selector"]: e for e in out["events"]}
    assert created["rsa202405"]["zone_entry"].startswith(
        'rsa202405._domainkey.example.com. IN TXT ( "v=DKIM1; k=rsa; p='
    )
    for pem in (tmp_path / "dkim" / "keys" / "example.com").iterdir():
        assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    # cron runs --advance: nothing in DNS yet
    out = cli(capsys, server, tmp_path, "rotate", "--advance", "--now", "2024-05-01T01:00")
    assert events(out) == [("waiting", "rsa202405"), ("waiting", "ed25519202405")]
    # the operator publishes the records (the RSA one as two strings)
    for selector, event in created.items():
        publish(server, f"{selector}._domainkey.example.com", event["publish"])
    out = cli(capsys, server, tmp_path, "rotate", "--advance", "--now", "2024-05-01T02:00")
    assert events(out) == [("activated", "rsa202405"), ("activated", "ed25519202405")]
    assert stages(out) == {"rsa202405": "active", "ed25519202405": "active"}
    # six months on, the schedule makes the successors
    out = cli(capsys, server, tmp_path, "rotate", "--advance", "--now", "2024-11-01")
    assert events(out) == [("created", "rsa202411"), ("created", "ed25519202411")]
    new = {e["selector"]: e["publish"] for e in out["events"]}
    for selector, record in new.items():
        publish(server, f"{selector}._domainkey.example.com", record)
    out = cli(capsys, server, tmp_path, "rotate", "--advance", "--now", "2024-11-02")
    assert stages(out) == {
        "rsa202405": "retired",
        "ed25519202405": "retired",
        "rsa202411": "active",
        "ed25519202411": "active",
    }
    # a week of grace, then the revocation is asked for
    out = cli(capsys, server, tmp_path, "rotate", "--advance", "--now", "2024-11-08T23:00")
    assert events(out) == []
    out = cli(capsys, server, tmp_path, "rotate", "--advance", "--now", "2024-11-09T00:00")
    assert events(out) == [("revoke", "rsa202405"), ("revoke", "ed25519202405")]
    assert [e["publish"] for e in out["events"]] == ["v=DKIM1; k=rsa; p=", "v=DKIM1; k=ed25519; p="]
    publish(server, "rsa202405._domainkey.example.com", "v=DKIM1; k=rsa; p=")
    unpublish(server, "ed25519202405._domainkey.example.com")
    out = cli(capsys, server, tmp_path, "rotate", "--advance", "--now", "2024-11-10")
    assert events(out) == [("revoked", "rsa202405"), ("revoked", "ed25519202405")]
    listed = cli(capsys, server, tmp_path, "keys")
    assert stages(listed) == {
        "rsa202405": "revoked",
        "ed25519202405": "revoked",
        "rsa202411": "active",
        "ed25519202411": "active",
    }
    assert {k["publish"] for k in listed["keys"]} == {None}
    names = sorted(p.name for p in (tmp_path / "dkim" / "keys" / "example.com").iterdir())
    assert names == ["ed25519202411.pem", "rsa202411.pem"]  # revoked keys' private halves gone
    # an emergency: both active keys to be revoked at once, new ones waiting
    out = cli(
        capsys,
        server,
        tmp_path,
        "rotate",
        "-d",
        "example.com",
        "--emergency",
        "--now",
        "2024-11-20",
    )
    assert stages(out) == {
        "rsa202405": "revoked",
        "ed25519202405": "revoked",
        "rsa202411": "revoke",
        "ed25519202411": "revoke",
        "rsa202411b": "pending",
        "ed25519202411b": "pending",
    }
    assert not [k for k in DirectoryStore(tmp_path / "dkim").load() if k.signing]


def test_keys_human_output(
    capsys: pytest.CaptureFixture[str], dns_server: DNSTestServer, tmp_path: Path
) -> None:
    assert run(["dkim", "keys", "--data-dir", str(tmp_path)]) == 0
    assert "no DKIM keys yet" in capsys.readouterr().out
    cli(capsys, dns_server, tmp_path, "rotate", "--domain", "example.org", "--now", "2024-05-01")
    assert run(["dkim", "keys", "--data-dir", str(tmp_path)]) == 0
    shown = capsys.readouterr().out
    assert "rsa202405._domainkey.example.org: publish: v=DKIM1; k=rsa; p=" in shown
    assert "pending" in shown


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["rotate"], "give --domain"),
        (["rotate", "--emergency", "--advance"], "--emergency needs --domain"),
        (["rotate", "--domain", "not a domain"], "invalid domain"),
        (["rotate", "--domain", "com"], "invalid domain"),
        (["rotate", "--domain", "a.example", "--now", "yesterday"], "--now"),
        (["rotate", "--domain", "a.example", "--now", "nan"], "--now"),
        (["keys", "--domain", "-x-.example"], "invalid domain"),
    ],
)
def test_bad_arguments_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], message: str
) -> None:
    code = run(["dkim", *args, "--data-dir", str(tmp_path), "--dns-zone", "/dev/null"])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert err.count("\n") == 1


def test_a_broken_store_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "dkim").mkdir()
    (tmp_path / "dkim" / "state.json").write_text('{"version": 1, "keys": [7]}')
    for args in (["keys"], ["rotate", "--advance", "--dns-zone", "/dev/null"]):
        assert run(["dkim", *args, "--data-dir", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert "key store" in err
        assert err.count("\n") == 1


def test_domain_check_warns_about_old_keys(
    capsys: pytest.CaptureFixture[str], dns_server: DNSTestServer, tmp_path: Path
) -> None:
    """Keys made (by --now) in 2024 and still signing are older than max_key_age_days."""
    out = cli(capsys, dns_server, tmp_path, "rotate", "-d", "example.com", "--now", "2024-05-01")
    for event in out["events"]:
        publish(dns_server, event["name"], event["publish"])
    cli(capsys, dns_server, tmp_path, "rotate", "--advance", "--now", "2024-05-02")
    config = tmp_path / "mailwarden.toml"
    config.write_text(f'[gateway]\ndata_dir = "{tmp_path}"\n[signing]\nmax_key_age_days = 30\n')
    code = run(
        [
            "domain",
            "check",
            "example.com",
            "--config",
            str(config),
            "--json",
            "--dns-server",
            dns_server.address,
            "--no-dnsbl",
            "--no-common-selectors",
        ]
    )
    report = json.loads(capsys.readouterr().out)
    assert code in (0, 1)
    old = [f for f in report["findings"] if f["code"] == "dkim-key-old"]
    assert sorted(f["subject"] for f in old) == ["ed25519202405", "rsa202405"]
    checked = {s["selector"]: s for s in report["dkim"]["selectors"]}
    assert checked["rsa202405"]["key_type"] == "rsa"  # its published record was checked
