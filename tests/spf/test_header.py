"""Result headers: Received-SPF (RFC 7208 §9.1), and the spf clause of Authentication-Results
as mailwarden.authres writes it from the same result."""

from __future__ import annotations

from tests.spf.helpers import checker_for

from mailwarden.authres import spf_resinfo
from mailwarden.spf import received_spf


async def test_received_spf_header() -> None:
    zone: dict[str, dict[str, object]] = {"example.com": {"TXT": "v=spf1 ip4:192.0.2.0/24 -all"}}
    result = await checker_for(zone).check_mailfrom("192.0.2.5", "a@example.com", "h.x")
    header = received_spf(result, "mx.example.net")
    assert header == (
        "Received-SPF: pass (mx.example.net: domain of a@example.com designates 192.0.2.5 as "
        "permitted sender) receiver=mx.example.net; client-ip=192.0.2.5; "
        'envelope-from="a@example.com"; helo=h.x; identity=mailfrom; '
        'mechanism="ip4:192.0.2.0/24";'  # quoted: not dot-atoms (RFC 7208 §9.1)
    )
    assert spf_resinfo(result).format() == (
        "spf=pass (domain of a@example.com designates 192.0.2.5 as permitted sender) "
        "smtp.mailfrom=a@example.com"
    )


async def test_headers_quote_awkward_values() -> None:
    zone: dict[str, dict[str, object]] = {"example.com": {"TXT": "v=spf1 -all"}}
    result = await checker_for(zone).check_mailfrom(
        "192.0.2.5", '"odd local"@example.com', "bad helo (x)"
    )
    header = received_spf(result, "mx.example.net")
    assert 'envelope-from="\\"odd local\\"@example.com"' in header
    assert 'helo="bad helo (x)"' in header
    clause = spf_resinfo(result).format()
    assert clause.endswith('smtp.mailfrom="\\"odd local\\"@example.com"')
    broken = await checker_for({"example.com": {"TXT": "v=spf1 foo"}}).check_mailfrom(
        "192.0.2.5", "a@example.com", "h"
    )
    assert "problem=" in received_spf(broken, "mx")
