"""Authentication headers in plain words: Authentication-Results, Received-SPF,
DKIM-Signature, and which Authentication-Results are trusted."""

from __future__ import annotations

from tests.analyze.helpers import analyze, header

from mailwarden.analyze import analyze_message, parse_received_spf


async def test_postfix_chain_explanations() -> None:
    data = await analyze("postfix_chain.eml")
    ar = header(data, "authentication-results")
    assert ar["trusted"] is True
    assert ar["data"]["authserv_id"] == "mx.example.net"
    assert [r["method"] for r in ar["data"]["results"]] == ["spf", "dkim", "dkim", "dmarc", "iprev"]
    assert ar["data"]["results"][0]["properties"] == {"smtp.mailfrom": "alice@example.com"}
    assert any("spf=pass" in line and "alice@example.com" in line for line in ar["explanation"])
    spf = header(data, "received-spf")
    assert spf["data"]["result"] == "pass"
    assert spf["data"]["client-ip"] == "192.0.2.10"
    assert spf["data"]["envelope-from"] == "alice@example.com"
    assert spf["data"]["helo"] == "mail.example.com"
    new, old = header(data, "dkim-signature", 0), header(data, "dkim-signature", 1)
    assert new["data"]["selector"] == "sel2025"
    assert new["data"]["algorithm"] == "rsa-sha256"
    assert new["data"]["key_bits"] == 2048  # fetched now
    assert new["data"]["length"] is not None
    assert "from" in new["data"]["signed_headers"]
    assert any("l=" in line and "not protected" in line for line in new["explanation"])
    assert any(line.startswith("oversigns from") for line in new["explanation"])
    assert old["data"]["selector"] == "old2020"
    assert old["data"]["algorithm"] == "ed25519-sha256"
    assert old["data"]["key_bits"] is None  # the key is gone
    assert old["data"]["length"] is None


def test_parse_received_spf() -> None:
    assert parse_received_spf(
        'softfail (mx: transitioning (x)) client-ip=192.0.2.1; envelope-from="a@b.example";'
        " helo=h.example"
    ) == {
        "result": "softfail",
        "comment": "mx: transitioning (x)",
        "client-ip": "192.0.2.1",
        "envelope-from": "a@b.example",
        "helo": "h.example",
    }


async def test_results_written_below_our_own_received_field_are_ours() -> None:
    """Receivers (Gmail, milters, mailwarden's gateway) add Authentication-Results just below
    their Received field; one below the previous hop's Received came from outside."""
    from mailwarden.message import Message

    raw = (
        b"Received: from mail.example.com (mail.example.com [192.0.2.10])\r\n"
        b"\tby mx.example.net (mailwarden) with ESMTP id A1; Mon, 23 Nov 2026 12:00:05 +0000\r\n"
        b"Authentication-Results: mx.example.net; spf=pass smtp.mailfrom=a@example.com;\r\n"
        b"\tdkim=pass header.d=example.com\r\n"
        b"Received: from laptop (unknown [198.51.100.9])\r\n"
        b"\tby mail.example.com with ESMTPSA id B2; Mon, 23 Nov 2026 12:00:01 +0000\r\n"
        b"Authentication-Results: mx.example.net; dmarc=pass header.from=example.com\r\n"
        b"From: a@example.com\r\nSubject: s\r\n\r\nbody\r\n"
    )
    analysis = await analyze_message(
        Message.from_bytes(raw), None, trusted_hosts=["mx.example.net"]
    )
    data = analysis.to_dict()
    ours, forged = [h for h in data["headers"] if h["kind"] == "authentication-results"]
    assert ours["trusted"] is True
    assert forged["trusted"] is False  # below the earlier hop: in the message before it came
