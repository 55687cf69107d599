"""`mailwarden report import|summary|preview|send`: the JSON contracts, exit statuses, and
errors as one line."""

from __future__ import annotations

import asyncio
import gzip
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.reports.conftest import validate
from tests.reports.helpers import evaluation, spoof
from tests.testdata import PROJECT_ROOT, require_testdata

from mailwarden.cli import run
from mailwarden.reports import SQLiteStore

KEYS = ["file", "status", "reason", "kind", "org_name", "report_id", "domain", "messages"]


def invoke(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def test_import_json_contract(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    samples = require_testdata("dmarc-report-samples", "mox")
    data = str(tmp_path / "data")
    code, out, err = invoke(
        capsys,
        "report",
        "import",
        "--data-dir",
        data,
        "--json",
        str(samples / "google.eml"),
        str(samples / "yahoo.eml"),
    )
    assert (code, err) == (0, "")
    found = lines(out)
    assert [list(line) for line in found] == [KEYS, KEYS]
    assert found[0] == {
        "file": str(samples / "google.eml"),
        "status": "imported",
        "reason": None,
        "kind": "aggregate",
        "org_name": "google.com",
        "report_id": "13488712042596170873",
        "domain": "ueber.net",
        "messages": 5,
    }
    code, out, _ = invoke(capsys, "report", "import", "--data-dir", data, "--json", str(samples))
    statuses = {Path(line["file"]).name: line["status"] for line in lines(out)}
    assert statuses["google.eml"] == statuses["yahoo.eml"] == "duplicate"
    assert statuses["mailru.eml"] == "imported"
    assert statuses["LICENSE.MIT"] == "refused"
    assert code == 1  # something was refused


def test_import_several_reports_per_archive(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import io
    import zipfile

    good = require_testdata("dmarc-xsd", "dmarc-xml-0.2.xml").read_bytes()
    other = good.replace(b"3v98abbp8ya9n3va8yr8oa3ya", b"another-id")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.xml", good)
        archive.writestr("b.xml", other)
        archive.writestr("c.xml.gz", gzip.compress(good))
    path = tmp_path / "reports.zip"
    path.write_bytes(buffer.getvalue())
    code, out, _ = invoke(
        capsys, "report", "import", "--data-dir", str(tmp_path), "--json", str(path)
    )
    found = lines(out)
    assert [(f["status"], f["report_id"]) for f in found] == [
        ("imported", "3v98abbp8ya9n3va8yr8oa3ya"),
        ("imported", "another-id"),
        ("refused", None),
    ]
    assert found[2]["reason"] == "an archive inside an archive is refused"
    assert code == 1


def test_import_from_standard_input(tmp_path: Path) -> None:
    good = require_testdata("dmarc-xsd", "dmarc-xml-0.2.xml").read_bytes()
    command = [
        sys.executable,
        "-m",
        "mailwarden",
        "report",
        "import",
        "--data-dir",
        str(tmp_path),
        "--json",
        "-",
    ]
    done = subprocess.run(
        command,
        input=gzip.compress(good),
        capture_output=True,
        timeout=60,
        cwd=PROJECT_ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (line,) = lines(done.stdout.decode())
    assert (line["file"], line["status"], line["messages"]) == ("-", "imported", 123)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "import", "/no/such/file"], "no such file or directory"),
        (["report", "import"], "Missing argument"),
        (["report", "summary", "--domain", "bad domain!"], "not a domain name"),
        (["report", "summary", "--domain", "a.example", "--since", "yesterday"], "bad --since"),
        (["report", "preview", "--domain", ""], "not a domain name"),
        (["report", "send", "--config", "/no/such.toml"], "cannot read"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], message: str
) -> None:
    code, _out, err = invoke(capsys, *args, "--data-dir", str(tmp_path))
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert message in err
    assert "Traceback" not in err


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(max_size=20))
def test_any_since_is_read_or_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, since: str
) -> None:
    code, _, err = invoke(
        capsys,
        "report",
        "summary",
        "--domain",
        "a.example",
        "--since",
        since,
        "--no-dns",
        "--data-dir",
        str(tmp_path),
        "--json",
    )
    assert code in (0, 2), err
    assert "Traceback" not in err


REPORT = """<?xml version="1.0"?><feedback><report_metadata><org_name>big.example</org_name>
<email>r@big.example</email><report_id>{rid}</report_id><date_range><begin>{begin}</begin>
<end>{end}</end></date_range></report_metadata><policy_published><domain>a.example</domain>
<p>reject</p></policy_published>{records}</feedback>"""
RECORD = """<record><row><source_ip>{ip}</source_ip><count>{count}</count><policy_evaluated>
<disposition>{disp}</disposition><dkim>{dkim}</dkim><spf>{spf}</spf></policy_evaluated></row>
<identifiers><header_from>a.example</header_from></identifiers><auth_results>{auth}</auth_results>
</record>"""

DKIM = "<dkim><domain>a.example</domain><selector>s</selector><result>{result}</result></dkim>"


def test_summary_groups_failing_sources_by_cause(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    now = int(time.time())
    records = "".join(
        RECORD.format(**r)
        for r in [
            {
                "ip": "192.0.2.1",
                "count": 50,
                "disp": "none",
                "dkim": "pass",
                "spf": "pass",
                "auth": DKIM.format(result="pass"),
            },
            {
                "ip": "198.51.100.2",
                "count": 7,
                "disp": "reject",
                "dkim": "fail",
                "spf": "fail",
                "auth": DKIM.format(result="fail")
                + "<spf><domain>lists.example</domain><result>pass</result></spf>",
            },
            {
                "ip": "198.51.100.3",
                "count": 4,
                "disp": "reject",
                "dkim": "fail",
                "spf": "fail",
                "auth": "<spf><domain>mailer.example</domain><result>pass</result></spf>",
            },
            {
                "ip": "203.0.113.4",
                "count": 9,
                "disp": "reject",
                "dkim": "fail",
                "spf": "fail",
                "auth": "<spf><domain>a.example</domain><result>fail</result></spf>",
            },
        ]
    )
    path = tmp_path / "r.xml"
    path.write_text(REPORT.format(rid="s1", begin=now - 86400, end=now - 1, records=records))
    assert invoke(capsys, "report", "import", "--data-dir", str(tmp_path), str(path))[0] == 0
    code, out, err = invoke(
        capsys,
        "report",
        "summary",
        "--domain",
        "A.Example",
        "--no-dns",
        "--data-dir",
        str(tmp_path),
        "--json",
        "--since",
        "7d",
    )
    assert (code, err) == (0, "")
    summary = json.loads(out)
    assert (summary["domain"], summary["messages"], summary["passed"]) == ("a.example", 70, 50)
    assert summary["reports"] == 1
    assert summary["pass_rate"] == round(50 / 70, 4)
    failing = {cause: [s["address"] for s in group] for cause, group in summary["failing"].items()}
    assert failing == {
        "forwarder": ["198.51.100.2"],
        "unsigned_service": ["198.51.100.3"],
        "spoofer": ["203.0.113.4"],
    }
    source = summary["sources"][0]
    assert source == {
        "address": "192.0.2.1",
        "reverse_name": None,
        "reporter": "big.example",
        "messages": 50,
        "passed": 50,
        "failed": 0,
        "spf_aligned": 50,
        "dkim_aligned": 50,
        "dispositions": {"none": 50},
        "header_from": ["a.example"],
        "cause": None,
    }
    code, out, _ = invoke(
        capsys,
        "report",
        "summary",
        "--domain",
        "a.example",
        "--no-dns",
        "--data-dir",
        str(tmp_path),
    )
    assert code == 0
    assert "likely spoofers" in out
    assert "203.0.113.4" in out


def _record(data_dir: Path, evaluations: list[Any]) -> None:
    async def work() -> None:
        store = SQLiteStore(data_dir / "reports.sqlite3")
        await store.add_evaluations(evaluations)
        await store.close()

    asyncio.run(work())


CONFIG = """
[gateway]
hostname = "mx.example.net"
data_dir = "{data}"
[reports]
send = {send}
from_address = "dmarc-reports@reports.example.net"
spread_hours = 0.0
"""
ZONE = """
_dmarc.a.example. 300 IN TXT "v=DMARC1; p=reject; rua=mailto:dmarc@a.example"
_dmarc.example.net. 300 IN TXT "v=DMARC1; p=none"
"""


def _setup(tmp_path: Path, *, send: bool) -> tuple[Path, Path]:
    data = tmp_path / "data"
    config = tmp_path / "mailwarden.toml"
    config.write_text(CONFIG.format(data=data, send=str(send).lower()))
    zone = tmp_path / "zone"
    zone.write_text(ZONE)
    now = time.time()
    day = int(now) // 86400 * 86400
    _record(data, [evaluation(time=day - 3600), spoof(time=day - 3000), evaluation(time=now - 5)])
    _record(data, [evaluation()])  # a day long gone: a good exchange on record
    return config, zone


@pytest.fixture(scope="module")
def xsd() -> Any:
    from lxml import etree

    path = require_testdata("dmarc-xsd", "dmarc-xml-0.2.xsd")
    return etree.XMLSchema(etree.parse(str(path)))


def test_preview_shows_what_would_be_sent(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, xsd: Any
) -> None:
    config, zone = _setup(tmp_path, send=False)
    code, out, err = invoke(
        capsys,
        "report",
        "preview",
        "--domain",
        "a.example",
        "--config",
        str(config),
        "--dns-zone",
        str(zone),
        "--json",
    )
    assert code == 0, err
    days = lines(out)
    assert [d["reports"][0]["messages"] for d in days if d["reports"]][-2:] == [2, 1]
    assert days[-1]["destinations"] == ["dmarc@a.example"]
    code, out, _ = invoke(
        capsys,
        "report",
        "preview",
        "--domain",
        "a.example",
        "--config",
        str(config),
        "--dns-zone",
        str(zone),
    )
    documents = [chunk for chunk in out.split("<?xml") if "<feedback" in chunk]
    assert documents
    for document in documents:
        validate(xsd, ("<?xml" + document.split("\n#")[0]).encode())


def test_send_is_off_by_default_and_dry_run_writes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config, zone = _setup(tmp_path, send=False)
    code, out, err = invoke(
        capsys, "report", "send", "--config", str(config), "--dns-zone", str(zone)
    )
    assert code == 0
    assert "reports are off" in err
    assert out == ""
    dry = tmp_path / "dry"
    code, out, err = invoke(
        capsys,
        "report",
        "send",
        "--now",
        "--config",
        str(config),
        "--dns-zone",
        str(zone),
        "--dry-run",
        str(dry),
        "--json",
    )
    assert code == 0, err
    results = lines(out)
    assert any(r.get("built") for r in results)
    assert {r["status"] for r in results if "status" in r} == {"written"}
    assert any(p.name.endswith(".xml.gz") for p in dry.iterdir())
