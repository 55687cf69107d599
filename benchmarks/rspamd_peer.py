"""rspamd as a benchmark peer: a private instance on loopback, against a DNS server we name.

Test-only: it needs the Debian package `rspamd` (never a runtime dependency of mailwarden).
`start_rspamd(folder, dns=(host, port), workers=N)` writes a private configuration (the
package's /etc/rspamd with `LOCAL_CONFDIR`, `RUNDIR`, `DBDIR`, `LOGDIR` in `folder`), keeps
only the SPF, DKIM, DMARC and ARC modules (every module that would ask other names, such as
DNS lists, hfilter, ASN, fuzzy, phishing, is off, and so are those that need Redis), listens
on loopback ports, and asks only `dns` for every name. `check(...)` sends one message to
/checkv2 with the envelope (IP, HELO, MAIL FROM) as headers and returns the symbols.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SEARCH_PATH = f"/usr/sbin:/usr/bin:/sbin:/bin:{os.environ.get('PATH', '')}"
KEEP = {"spf", "dkim", "dmarc", "arc"}
TLDS = ["example", "com", "net", "org", "test", "invalid", "co.uk", "de", "fr", "io"]
OFF = [
    "antivirus", "asn", "aws_s3", "bimi", "chartable", "clickhouse", "dcc", "dkim_signing",
    "elastic", "emails", "external_relay", "external_services", "force_actions",
    "forged_recipients", "fuzzy_check", "greylist", "hfilter", "history_redis", "http_headers",
    "maillist", "metadata_exporter", "metric_exporter", "mid", "milter_headers", "mime_types",
    "multimap", "mx_check", "neural", "once_received", "p0f", "phishing", "ratelimit", "rbl",
    "replies", "reputation", "rspamd_update", "spamassassin", "spamtrap", "surbl", "trie",
    "url_redirector", "whitelist", "known_senders", "url_reputation", "url_tags",
]  # fmt: skip


def rspamd_program() -> str | None:
    return shutil.which("rspamd", path=SEARCH_PATH)


def rspamd_version() -> str:
    program = rspamd_program()
    if program is None:
        return ""
    out = subprocess.run([program, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else ""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Rspamd:
    process: subprocess.Popen[bytes]
    port: int
    folder: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/checkv2"

    def log(self) -> str:
        path = self.folder / "log" / "rspamd.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _write_config(folder: Path, dns: tuple[str, int], workers: int, port: int) -> None:
    local = folder / "local"
    for sub in ("local.d", "override.d"):
        (local / sub).mkdir(parents=True, exist_ok=True)
    for sub in ("run", "db", "log"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    host, dns_port = dns
    (local / "local.d" / "options.inc").write_text(
        f'dns {{\n  nameserver = ["{host}:{dns_port}"];\n  timeout = 2s;\n  retransmits = 2;\n'
        "  sockets = 16;\n  enable_dnssec = false;\n}\n"
    )
    # the corpus' clients are in 10.0.0.0/8: not local here, or SPF and DKIM are skipped.
    # A short public suffix list: rspamd compiles the full one into its URL matcher at every
    # start (about 45 s on a loaded 2-core machine); the corpus uses only .example names
    (folder / "tld.dat").write_text("\n".join(TLDS) + "\n")
    (local / "override.d" / "options.inc").write_text(
        f'local_addrs = ["127.0.0.2/32"];\nurl_tld = "{folder / "tld.dat"}";\n'
    )
    (local / "override.d" / "logging.inc").write_text('type = "file";\nlevel = "error";\n')
    (local / "override.d" / "worker-normal.inc").write_text(
        f'bind_socket = "127.0.0.1:{port}";\ncount = {workers};\ntask_timeout = 10s;\n'
    )
    (local / "override.d" / "worker-controller.inc").write_text(
        f'bind_socket = "127.0.0.1:{_free_port()}";\ncount = 1;\n'
    )
    (local / "override.d" / "worker-proxy.inc").write_text("enabled = false;\ncount = 0;\n")
    for module in OFF:
        (local / "override.d" / f"{module}.conf").write_text("enabled = false;\n")
    (local / "override.d" / "redis.conf").write_text("")
    (local / "override.d" / "arc.conf").write_text(
        "sign_authenticated = false;\nsign_local = false;\nsign_inbound = false;\n"
    )


@contextlib.contextmanager
def start_rspamd(
    folder: Path, *, dns: tuple[str, int], workers: int = 1, wait: float = 60.0
) -> Iterator[Rspamd]:
    program = rspamd_program()
    if program is None:
        raise RuntimeError("rspamd is not installed (Debian package rspamd)")
    port = _free_port()
    _write_config(folder, dns, workers, port)
    user = "root" if os.geteuid() == 0 else str(os.getuid())
    command = [
        program, "-f", "-i", "-u", user, "-g", user, "-c", "/etc/rspamd/rspamd.conf",
        f"--var=LOCAL_CONFDIR={folder / 'local'}", f"--var=RUNDIR={folder / 'run'}",
        f"--var=DBDIR={folder / 'db'}", f"--var=LOGDIR={folder / 'log'}",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    peer = Rspamd(process, port, folder)
    try:
        deadline = time.monotonic() + wait
        while True:
            if process.poll() is not None:
                err = process.stderr.read().decode(errors="replace") if process.stderr else ""
                raise RuntimeError(f"rspamd exited {process.returncode}: {err}{peer.log()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1) as r:
                    if r.read().strip() == b"pong":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"rspamd did not start: {peer.log()}")
            time.sleep(0.2)
        yield peer
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def headers(ip: str, helo: str, mail_from: str) -> dict[str, str]:
    """The envelope as rspamd's /checkv2 takes it (no PTR lookup: Hostname is given)."""
    return {"IP": ip, "Helo": helo, "From": mail_from, "Hostname": "unknown", "Pass": "all"}


def results(reply: dict[str, Any]) -> tuple[str, str, str, str]:
    """(spf, dkim, dmarc, arc) from rspamd's symbols, in Authentication-Results words."""
    symbols = set(reply.get("symbols", {}))

    def pick(table: dict[str, str], default: str = "none") -> str:
        for symbol, word in table.items():
            if symbol in symbols:
                return word
        return default

    spf = pick({"R_SPF_ALLOW": "pass", "R_SPF_FAIL": "fail", "R_SPF_SOFTFAIL": "softfail",
                "R_SPF_NEUTRAL": "neutral", "R_SPF_DNSFAIL": "temperror",
                "R_SPF_PERMFAIL": "permerror", "R_SPF_NA": "none"})  # fmt: skip
    dkim = pick({"R_DKIM_ALLOW": "pass", "R_DKIM_REJECT": "fail", "R_DKIM_TEMPFAIL": "temperror",
                 "R_DKIM_PERMFAIL": "permerror", "R_DKIM_NA": "none"})  # fmt: skip
    dmarc = pick({"DMARC_POLICY_ALLOW": "pass", "DMARC_POLICY_REJECT": "fail",
                  "DMARC_POLICY_QUARANTINE": "fail", "DMARC_POLICY_SOFTFAIL": "fail",
                  "DMARC_POLICY_ALLOW_WITH_FAILURES": "pass", "DMARC_NA": "none",
                  "DMARC_DNSFAIL": "temperror", "DMARC_BAD_POLICY": "permerror"})  # fmt: skip
    arc = pick({"ARC_ALLOW": "pass", "ARC_REJECT": "fail", "ARC_INVALID": "fail",
                "ARC_DNSFAIL": "temperror", "ARC_NA": "none"})  # fmt: skip
    return spf, dkim, dmarc, arc


def check_one(peer: Rspamd, message: bytes, ip: str, helo: str, mail_from: str) -> dict[str, Any]:
    request = urllib.request.Request(
        peer.url, data=message, headers=headers(ip, helo, mail_from), method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        return dict(json.loads(reply.read()))
