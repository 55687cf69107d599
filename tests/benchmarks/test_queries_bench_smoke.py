"""Smoke test of benchmarks/queries_bench.py: questions are sorted into the right kinds, the
proxy logs what crosses it (UDP and TCP) and passes answers back, and the JSON is complete;
with nsd and rspamd installed, rspamd's column is filled and compared message by message."""

from __future__ import annotations

import json
import socket
import struct
import tempfile
from pathlib import Path

import dns.message
import dns.query
import pytest
from tests.benchmarks.loader import load_benchmark
from tests.dns.nsd import nsd_program, start_nsd
from tests.testdata import unavailable


def test_questions_are_sorted_by_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    module = load_benchmark("queries_bench", monkeypatch)
    context = module.Context(
        helo={"out.d1.example"},
        mail_from={"d1.example"},
        authors={"d2.example"},
        dkim_keys={"sel._domainkey.d1.example"},
        arc_keys={"arc._domainkey.list.example"},
    )
    expected = {
        ("out.d1.example", "TXT"): module.HELO_SPF,  # below the MAIL FROM domain, still HELO
        ("d1.example", "TXT"): "SPF MAIL FROM record (TXT)",
        ("_spf.prov.example", "TXT"): "SPF include/redirect (TXT)",
        ("d1.example", "MX"): "SPF mx mechanism (MX)",
        ("mx.d1.example", "AAAA"): "SPF a/mx addresses (A/AAAA)",
        ("sel._domainkey.d1.example", "TXT"): "DKIM key (TXT)",
        ("arc._domainkey.list.example", "TXT"): "ARC key (TXT)",
        ("_dmarc.d2.example", "TXT"): "DMARC at the Author Domain (TXT)",
        ("_dmarc.example", "TXT"): "DMARC Tree Walk above it / other domains (TXT)",
        ("_dmarc.d1.example", "TXT"): "DMARC Tree Walk above it / other domains (TXT)",
        ("d2.example", "A"): "DMARC np= existence of the Author Domain (A/AAAA)",
        ("4.3.0.10.in-addr.arpa", "PTR"): "iprev / PTR",
    }
    for question, kind in expected.items():
        assert module.classify(question, context) == kind, question
    assert set(expected.values()) <= set(module.KINDS)


def test_the_proxy_logs_questions_and_relays_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    if nsd_program() is None:
        unavailable("nsd is not installed (Debian package nsd; make system-deps)")
    module = load_benchmark("queries_bench", monkeypatch)
    zone = "$ORIGIN example.\n$TTL 300\n@ IN SOA ns.example. h.example. 1 3600 600 86400 300\n"
    zone += '@ IN NS ns.example.\nns IN A 127.0.0.1\nwww IN TXT "hello"\n'
    with tempfile.TemporaryDirectory() as name:
        nsd = start_nsd(Path(name), {"example": zone})
        proxy = module.QuestionProxy(("127.0.0.1", nsd.port))
        try:
            query = dns.message.make_query("WWW.example.", "TXT")
            answer = dns.query.udp(query, "127.0.0.1", port=proxy.port, timeout=5)
            assert answer.answer
            assert b"hello" in answer.answer[0][0].strings[0]
            missing = dns.message.make_query("nothing.example.", "A")
            over_tcp = dns.query.tcp(missing, "127.0.0.1", port=proxy.port, timeout=5)
            assert over_tcp.rcode() == 3  # NXDOMAIN, relayed as the server said it
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
                sock.sendall(struct.pack("!H", 40) + b"\x00" * 3)  # cut short, then closed
            assert proxy.take() == [("www.example", "TXT"), ("nothing.example", "A")]
            assert proxy.take() == []
        finally:
            proxy.close()
            nsd.stop()


def test_mailwarden_only_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    module = load_benchmark("queries_bench", monkeypatch)
    assert module.main(["--messages", "10", "--domains", "4", "--no-rspamd", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    cold = report["cold"]["mailwarden"]
    assert set(cold) == set(module.KINDS)
    # the corpus' shape: every message asks its MAIL FROM policy, its key, its author's DMARC
    for kind in ("SPF MAIL FROM record (TXT)", "DKIM key (TXT)", "SPF mx mechanism (MX)"):
        assert cold[kind] == 1.0
    assert cold["DMARC at the Author Domain (TXT)"] == 1.0
    # the provider's first range holds every client: its second include is never asked
    assert cold["SPF include/redirect (TXT)"] == 1.0
    assert cold["other"] == 0.0
    shared = report["shared"]["mailwarden"]
    assert sum(shared.values()) < sum(cold.values())  # one cache: fewer questions
    assert report["rspamd"] == "not asked (--no-rspamd)"


def test_run_with_rspamd(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    module = load_benchmark("queries_bench", monkeypatch)
    if nsd_program() is None or module.rspamd_peer.rspamd_program() is None:
        unavailable(
            "nsd or rspamd is not installed (Debian packages nsd, rspamd; make system-deps)"
        )
    argv = ["--messages", "6", "--domains", "3", "--cold-sample", "2", "--json"]
    assert module.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rspamd"].startswith("Rspamd")
    shared = report["shared"]
    assert shared["mailwarden over DNS"] == pytest.approx(shared["mailwarden"])
    assert shared["rspamd"]["DKIM key (TXT)"] > 0
    assert shared["rspamd"]["SPF MAIL FROM record (TXT)"] > 0
    sample = report["cold_sample"]
    assert sample["rspamd"]["DMARC at the Author Domain (TXT)"] == 1.0
    each = sample["per_message"]
    assert each["more"] + each["equal"] + each["fewer"] == 2
