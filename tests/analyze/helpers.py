"""Shared by the analyze tests: the messages of tests/analyze/data (made by make_data.py), their
DNS zone, and small builders of Received chains."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from mailwarden.analyze import analyze_message
from mailwarden.dns import StaticResolver
from mailwarden.dnsbl import parse_list
from mailwarden.message import read_message

DATA = Path(__file__).resolve().parent / "data"
NOW = datetime.datetime(2026, 11, 23, 12, 0, tzinfo=datetime.UTC).timestamp()
TEST_LIST = parse_list({"name": "testbl", "zone": "bl.example.test"})


def resolver() -> StaticResolver:
    return StaticResolver.from_master_files([DATA / "zone.txt"])


async def analyze(name: str, dns: StaticResolver | None = None, **options: Any) -> dict[str, Any]:
    message = read_message((DATA / name).read_bytes())
    result = await analyze_message(
        message,
        dns if dns is not None else resolver(),
        dns_lists=[TEST_LIST],
        clock=lambda: NOW,
        **options,
    )
    return result.to_dict()


def header(data: dict[str, Any], kind: str, index: int = 0) -> dict[str, Any]:
    found = [h for h in data["headers"] if h["kind"] == kind]
    return found[index]


def change(data: dict[str, Any], method: str, subject: str | None = None) -> dict[str, Any]:
    return next(
        c
        for c in data["changes"]
        if c["method"] == method and (subject is None or c["subject"] == subject)
    )


def hop(client: str, octet: int, by: str, time: str) -> str:
    return (
        f"from {client}.example ({client}.example [192.0.2.{octet}]) by {by}.example;"
        f" Mon, 23 Nov 2026 {time} +0000"
    )


def message_with(received: list[str], extra: str = "") -> bytes:
    fields = "".join(f"Received: {r}\r\n" for r in received)
    return (extra + fields + "From: a@example.com\r\nSubject: x\r\n\r\nbody\r\n").encode()
