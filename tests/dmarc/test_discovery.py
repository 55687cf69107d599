"""`Lookup`: each ``_dmarc`` name is asked once per evaluation, whoever asks and when, and an
asker that gives up does not leave the others without an answer."""

from __future__ import annotations

import asyncio

import pytest
from tests.dmarc.fakedns import TEMPFAIL, TableResolver

from mailwarden.dmarc.discovery import DiscoveryTempError, Lookup
from mailwarden.dns import Answer, RdType


class SlowResolver(TableResolver):
    """Answers only when `release` is set, so askers overlap."""

    def __init__(self, table: dict[str, str | None]) -> None:
        super().__init__(table)
        self.release = asyncio.Event()

    async def resolve(self, name: str, rdtype: RdType) -> Answer:
        await self.release.wait()
        return await super().resolve(name, rdtype)


async def test_concurrent_askers_share_one_query() -> None:
    resolver = SlowResolver({"_dmarc.example.com": "v=DMARC1; p=reject"})
    lookup = Lookup(resolver)
    askers = [asyncio.ensure_future(lookup.record("example.com")) for _ in range(3)]
    await asyncio.sleep(0)
    resolver.release.set()
    found = await asyncio.gather(*askers)
    assert {id(f) for f in found} == {id(found[0])}
    assert found[0].record is not None
    assert found[0].record.p is not None
    assert resolver.txt_queries() == ["_dmarc.example.com"]
    assert lookup.queries == 1
    again = await lookup.record("example.com")  # later askers: the outcome kept
    assert again is found[0]
    assert resolver.txt_queries() == ["_dmarc.example.com"]


async def test_a_temporary_failure_is_every_askers() -> None:
    resolver = TableResolver({"_dmarc.example.com": TEMPFAIL})
    lookup = Lookup(resolver)
    for _ in range(2):
        with pytest.raises(DiscoveryTempError):
            await lookup.record("example.com")
    assert resolver.txt_queries() == ["_dmarc.example.com"]


async def test_an_asker_that_gives_up_leaves_the_name_to_the_others() -> None:
    resolver = SlowResolver({"_dmarc.example.com": "v=DMARC1; p=none"})
    lookup = Lookup(resolver)
    first = asyncio.ensure_future(lookup.record("example.com"))
    await asyncio.sleep(0)  # the first asker is querying
    second = asyncio.ensure_future(lookup.record("example.com"))
    await asyncio.sleep(0)  # the second waits for it
    first.cancel()
    await asyncio.sleep(0)
    resolver.release.set()
    found = await second  # asked again, and answered
    assert found.record is not None
    assert first.cancelled()
    assert lookup.queries == 2  # the first query was abandoned with its asker


async def test_no_record_is_an_outcome_not_an_error() -> None:
    lookup = Lookup(TableResolver({}))
    found = await lookup.record("example.org")
    assert found.record is None
    assert found.note == "no record"
