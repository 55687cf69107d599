"""Key rotation through every stage, against a DNS zone the tests change.

The pure rules first (`step`, as a table), then a `Rotator` over a store: a first key set, a
rotation that waits for DNS, activation with the right key only, the grace period, the
revocation seen in DNS, the schedule, an emergency rotation, and DNS failures that change
nothing.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from tests.signing.helpers import DAY, START, Clock, Zone, fast_keys

from mailwarden.dkim import KeyType, key_record
from mailwarden.signing import (
    EventKind,
    ManagedKey,
    MemoryStore,
    Publication,
    Rotator,
    Seen,
    SigningSettings,
    Stage,
    next_selector,
    revocation_record,
    step,
)

SETTINGS = SigningSettings()


def key(
    selector: str, stage: Stage, *, algorithm: KeyType = KeyType.ED25519, **kw: object
) -> ManagedKey:
    base = ManagedKey(
        domain="a.example",
        selector=selector,
        algorithm=algorithm,
        bits=256,
        record=key_record(ed25519.Ed25519PrivateKey.generate()),
        created=START,
        stage=stage,
        since=START,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def seen(*pairs: tuple[str, Publication]) -> dict[tuple[str, str], Seen]:
    return {("a.example", selector): Seen(publication, "") for selector, publication in pairs}


# -- the rules, as a table ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "found", "days", "stages", "kinds"),
    [
        # a pending key waits until DNS shows its own key
        ([key("n", Stage.PENDING)], seen(("n", Publication.ABSENT)), 0, ["pending"], ["waiting"]),
        ([key("n", Stage.PENDING)], seen(("n", Publication.OTHER)), 0, ["pending"], ["waiting"]),
        ([key("n", Stage.PENDING)], seen(("n", Publication.REVOKED)), 0, ["pending"], ["waiting"]),
        (
            [key("n", Stage.PENDING)],
            seen(("n", Publication.UNKNOWN)),
            0,
            ["pending"],
            ["dns-error"],
        ),
        ([key("n", Stage.PENDING)], seen(("n", Publication.MATCHES)), 0, ["active"], ["activated"]),
        # activation retires the active key of the same algorithm, not of another
        (
            [key("o", Stage.ACTIVE), key("n", Stage.PENDING)],
            seen(("o", Publication.MATCHES), ("n", Publication.MATCHES)),
            0,
            ["retired", "active"],
            ["activated", "retired"],
        ),
        (
            [key("o", Stage.ACTIVE, algorithm=KeyType.RSA), key("n", Stage.PENDING)],
            seen(("o", Publication.MATCHES), ("n", Publication.MATCHES)),
            0,
            ["active", "active"],
            ["activated"],
        ),
        # the grace period: 7 days by default, not a second less
        ([key("o", Stage.RETIRED, retired=START)], {}, 6.99, ["retired"], []),
        ([key("o", Stage.RETIRED, retired=START)], {}, 7, ["revoke"], ["revoke"]),
        # revocation is done when DNS shows an empty p=, no record, or another key
        ([key("o", Stage.REVOKE)], seen(("o", Publication.MATCHES)), 0, ["revoke"], ["revoke"]),
        ([key("o", Stage.REVOKE)], seen(("o", Publication.UNKNOWN)), 0, ["revoke"], ["dns-error"]),
        ([key("o", Stage.REVOKE)], seen(("o", Publication.REVOKED)), 0, ["revoked"], ["revoked"]),
        ([key("o", Stage.REVOKE)], seen(("o", Publication.ABSENT)), 0, ["revoked"], ["revoked"]),
        ([key("o", Stage.REVOKE)], seen(("o", Publication.OTHER)), 0, ["revoked"], ["revoked"]),
        # an active key whose record vanished keeps signing, and the operator is told
        ([key("o", Stage.ACTIVE)], seen(("o", Publication.ABSENT)), 0, ["active"], ["missing"]),
        ([key("o", Stage.ACTIVE)], seen(("o", Publication.MATCHES)), 0, ["active"], []),
        ([key("o", Stage.ACTIVE)], seen(("o", Publication.UNKNOWN)), 0, ["active"], []),
        # revoked keys stay revoked
        ([key("o", Stage.REVOKED)], {}, 400, ["revoked"], []),
    ],
)
def test_rules(
    keys: list[ManagedKey],
    found: dict[tuple[str, str], Seen],
    days: float,
    stages: list[str],
    kinds: list[str],
) -> None:
    out, events, due = step(keys, START + days * DAY, SETTINGS, found)
    assert [k.stage.value for k in out] == stages
    assert [e.kind.value for e in events] == kinds
    assert due == []


@pytest.mark.parametrize(
    ("days", "rotate_after", "pending", "due"),
    [
        (181, 182, False, False),
        (182, 182, False, True),
        (182, 182, True, False),  # a successor is already waiting for DNS
        (5000, 0, False, False),  # 0: no schedule
        (30, 30, False, True),
    ],
)
def test_schedule(days: float, rotate_after: int, pending: bool, due: bool) -> None:
    settings = replace(SETTINGS, rotate_after_days=rotate_after)
    keys = [key("o", Stage.ACTIVE, activated=START)]
    if pending:
        keys.append(key("n", Stage.PENDING))
    _, _, found = step(keys, START + days * DAY, settings, {})
    assert found == ([("a.example", KeyType.ED25519)] if due else [])


def test_revoke_events_carry_the_empty_record() -> None:
    _, events, _ = step([key("o", Stage.RETIRED, retired=START)], START + 8 * DAY, SETTINGS, {})
    assert events[0].record == revocation_record(KeyType.ED25519) == "v=DKIM1; k=ed25519; p="
    assert events[0].zone_entry() == 'o._domainkey.a.example. IN TXT ( "v=DKIM1; k=ed25519; p=" )'
    assert events[0].needs_operator


@pytest.mark.parametrize(
    ("template", "algorithm", "used", "expected"),
    [
        ("{algorithm}{yyyymm}", KeyType.RSA, [], "rsa202405"),
        ("{algorithm}{yyyymm}", KeyType.ED25519, [], "ed25519202405"),
        ("{algorithm}{yyyymm}", KeyType.RSA, ["rsa202405"], "rsa202405b"),
        ("{algorithm}{yyyymm}", KeyType.RSA, ["rsa202405", "rsa202405b"], "rsa202405c"),
        ("s{yyyymmdd}-{algorithm}", KeyType.RSA, [], "s20240501-rsa"),
        ("mail.{yyyy}.{mm}.{dd}.{algorithm}", KeyType.RSA, [], "mail.2024.05.01.rsa"),
        ("{ALGORITHM}", KeyType.RSA, [], None),
        ("{algorithm", KeyType.RSA, [], None),
        ("{algorithm}_{yyyy}", KeyType.RSA, [], "rsa_2024"),
        ("{algorithm} {yyyy}", KeyType.RSA, [], None),
        ("{0}", KeyType.RSA, [], None),
        ("", KeyType.RSA, [], None),
    ],
)
def test_selector_names(
    template: str, algorithm: KeyType, used: list[str], expected: str | None
) -> None:
    if expected is None:
        with pytest.raises(ValueError, match="selector template"):
            next_selector(template, algorithm, START, used)
    else:
        assert next_selector(template, algorithm, START, used) == expected


# -- a rotator through every stage --------------------------------------------------------


def rotator(zone: Zone, clock: Clock, **settings: object) -> Rotator:
    return Rotator(
        MemoryStore(),
        replace(SETTINGS, **settings),  # type: ignore[arg-type]
        zone,
        clock=clock,
        generate=fast_keys(),
    )


def stages(rot: Rotator) -> dict[str, str]:
    return {k.selector: k.stage.value for k in rot.current()}


def publish_all(zone: Zone, rot: Rotator, stage: Stage = Stage.PENDING) -> None:
    for k in rot.current():
        if k.stage is stage:
            zone.publish(k.name, k.record)


async def test_every_stage_of_a_rotation() -> None:
    zone, clock = Zone(), Clock()
    rot = rotator(zone, clock)
    # the first keys: one per algorithm, waiting for their records
    events = await rot.rotate("A.Example.")
    assert stages(rot) == {"rsa202405": "pending", "ed25519202405": "pending"}
    created = [e for e in events if e.kind is EventKind.CREATED]
    assert [e.key.selector for e in created] == ["rsa202405", "ed25519202405"]
    assert all(e.record and e.record.startswith("v=DKIM1; k=") for e in created)
    assert created[0].zone_entry().startswith('rsa202405._domainkey.a.example. IN TXT ( "v=DKIM1')
    # another key's record at the selector does not activate it
    zone.publish("rsa202405._domainkey.a.example", key_record(ed25519.Ed25519PrivateKey.generate()))
    events = await rot.advance()
    assert stages(rot) == {"rsa202405": "pending", "ed25519202405": "pending"}
    assert {e.kind for e in events} == {EventKind.WAITING}
    # the right records: both active
    publish_all(zone, rot)
    events = await rot.advance()
    assert stages(rot) == {"rsa202405": "active", "ed25519202405": "active"}
    assert [e.kind for e in events] == [EventKind.ACTIVATED, EventKind.ACTIVATED]
    # six months later the schedule starts the next rotation by itself
    clock.advance(182)
    events = await rot.advance()
    assert stages(rot) == {
        "rsa202405": "active",
        "ed25519202405": "active",
        "rsa202410": "pending",
        "ed25519202410": "pending",
    }
    assert [e.kind for e in events].count(EventKind.CREATED) == 2
    # until DNS shows the new records, the old keys sign
    clock.advance(1)
    await rot.advance()
    assert stages(rot)["rsa202405"] == "active"
    publish_all(zone, rot)
    clock.advance(1)
    events = await rot.advance()
    assert stages(rot) == {
        "rsa202405": "retired",
        "ed25519202405": "retired",
        "rsa202410": "active",
        "ed25519202410": "active",
    }
    retired = [e for e in events if e.kind is EventKind.RETIRED]
    assert len(retired) == 2
    assert "keep its record published until" in retired[0].message
    # the grace period: still retired after 6 days, to be revoked after 7
    clock.advance(6)
    assert not [e for e in await rot.advance() if e.kind is EventKind.REVOKE]
    clock.advance(1)
    events = await rot.advance()
    revoke = [e for e in events if e.kind is EventKind.REVOKE]
    assert [e.key.selector for e in revoke] == ["rsa202405", "ed25519202405"]
    assert revoke[0].record == "v=DKIM1; k=rsa; p="
    # not revoked in DNS yet: reminded again
    events = await rot.advance()
    assert [e.kind for e in events].count(EventKind.REVOKE) == 2
    # the operator publishes the empty p= for one and removes the other record
    zone.publish("rsa202405._domainkey.a.example", "v=DKIM1; k=rsa; p=")
    zone.remove("ed25519202405._domainkey.a.example")
    events = await rot.advance()
    assert stages(rot)["rsa202405"] == stages(rot)["ed25519202405"] == "revoked"
    assert [e.kind for e in events].count(EventKind.REVOKED) == 2
    for selector in ("rsa202405", "ed25519202405"):
        with pytest.raises(ValueError, match="no private key"):
            rot.store.read_private_key("a.example", selector)
    assert rot.store.read_private_key("a.example", "rsa202410")


async def test_a_dns_failure_changes_nothing() -> None:
    zone, clock = Zone(), Clock()
    rot = rotator(zone, clock, algorithms=(KeyType.ED25519,))
    await rot.rotate("a.example")
    publish_all(zone, rot)
    zone.broken.add("ed25519202405._domainkey.a.example")
    events = await rot.advance()
    assert stages(rot) == {"ed25519202405": "pending"}
    assert [e.kind for e in events] == [EventKind.DNS_ERROR]
    zone.broken.clear()
    await rot.advance()
    assert stages(rot) == {"ed25519202405": "active"}


async def test_rotate_again_keeps_the_waiting_key() -> None:
    zone, clock = Zone(), Clock()
    rot = rotator(zone, clock, algorithms=(KeyType.ED25519,))
    await rot.rotate("a.example")
    events = await rot.rotate("a.example")
    assert stages(rot) == {"ed25519202405": "pending"}
    assert EventKind.CREATED not in {e.kind for e in events}
    assert any("already waiting" in e.message for e in events)


async def test_rotate_after_publishing_activates_at_once() -> None:
    """`rotate` applies the rules once after making keys: run again once the record is out,
    it activates the waiting key instead of making another."""
    zone, clock = Zone(), Clock()
    rot = rotator(zone, clock, algorithms=(KeyType.ED25519,))
    await rot.rotate("a.example")
    publish_all(zone, rot)
    clock.advance(40)
    events = await rot.rotate("a.example")
    assert stages(rot) == {"ed25519202405": "active"}
    assert EventKind.ACTIVATED in [e.kind for e in events]
    events = await rot.rotate("a.example")  # now a successor, named for June
    assert stages(rot) == {"ed25519202405": "active", "ed25519202406": "pending"}
    zone.publish("ed25519202406._domainkey.a.example", rot.current()[1].record)
    events = await rot.advance()
    assert [e.kind for e in events] == [EventKind.ACTIVATED, EventKind.RETIRED]


async def test_emergency_rotation_stops_signing_at_once() -> None:
    zone, clock = Zone(), Clock()
    rot = rotator(zone, clock)
    await rot.rotate("a.example")
    publish_all(zone, rot)
    await rot.advance()
    clock.advance(2)
    events = await rot.rotate("a.example", emergency=True)
    assert stages(rot) == {
        "rsa202405": "revoke",
        "ed25519202405": "revoke",
        "rsa202405b": "pending",
        "ed25519202405b": "pending",
    }
    assert [e.kind for e in events][:2] == [EventKind.REVOKE, EventKind.REVOKE]
    assert all(k.emergency for k in rot.current())
    assert not [k for k in rot.current() if k.signing]  # unsigned until the new records show
    publish_all(zone, rot)
    for old in ("rsa202405", "ed25519202405"):
        zone.publish(f"{old}._domainkey.a.example", "v=DKIM1; p=")
    await rot.advance()
    assert stages(rot) == {
        "rsa202405": "revoked",
        "ed25519202405": "revoked",
        "rsa202405b": "active",
        "ed25519202405b": "active",
    }


async def test_domains_are_independent() -> None:
    zone, clock = Zone(), Clock()
    rot = rotator(zone, clock, algorithms=(KeyType.ED25519,))
    await rot.rotate("a.example")
    await rot.rotate("b.example")
    for k in rot.current("a.example"):
        zone.publish(k.name, k.record)
    await rot.advance()
    assert {(k.domain, k.stage.value) for k in rot.current()} == {
        ("a.example", "active"),
        ("b.example", "pending"),
    }


@pytest.mark.parametrize("domain", ["", "com", "a..example", "-a.example", "a example", "x" * 300])
async def test_bad_domains_are_refused(domain: str) -> None:
    rot = rotator(Zone(), Clock())
    with pytest.raises(ValueError, match="invalid domain"):
        await rot.rotate(domain)
    assert rot.current() == []
