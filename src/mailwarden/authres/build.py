"""Building our Authentication-Results field with one chained builder (RFC 8601 §2.7).

header = (
    AuthResultsBuilder("mx.example.net")
    .spf(spf_result)
    .dkim("pass", domain="example.com", selector="s1", algorithm="rsa-sha256", b=signature)
    .dmarc(dmarc_result)
    .format_field()
)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from mailwarden.dmarc import DMARCResult
from mailwarden.spf import Identity, SPFResult
from mailwarden.spf.header import describe

from .model import AuthenticationResults, Property, ResInfo

__all__ = ["AuthResultsBuilder", "DKIMReport", "dkim_resinfo", "spf_resinfo"]

_HELO = Identity.HELO  # (a module constant: Enum.MEMBER reads are slow on Python 3.11)


class DKIMReport(Protocol):
    """What a dkim clause needs from a verification result (mailwarden.dkim.DKIMResult has it).

    `header_b` is the RFC 6008 prefix of the signature's b= (at least eight characters).
    """

    @property
    def result(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def domain(self) -> str: ...
    @property
    def selector(self) -> str: ...
    @property
    def algorithm(self) -> str: ...
    @property
    def header_b(self) -> str: ...
    @property
    def identity(self) -> str: ...


def _props(*pairs: tuple[str, str, str | None]) -> tuple[Property, ...]:
    return tuple([Property(ptype, name, value) for ptype, name, value in pairs if value])


def spf_resinfo(result: SPFResult, *, comment: bool = True) -> ResInfo:
    """RFC 8601 §2.7.2: spf with smtp.mailfrom (MAIL FROM identity) or smtp.helo; the reason
    on temperror and permerror, the result in words as a comment."""
    if result.identity is _HELO:
        prop = ("smtp", "helo", result.domain)
    else:
        prop = ("smtp", "mailfrom", result.sender)
    word = str(result.result)  # the value of a StrEnum (cheaper than .value on 3.11)
    reason = result.reason if word in ("temperror", "permerror") else None
    return ResInfo(
        "spf",
        word,
        reason=reason,
        properties=_props(prop),
        comments=(describe(result),) if comment else (),
    )


def dkim_resinfo(result: DKIMReport) -> ResInfo:
    """RFC 8601 §2.7.1 / RFC 6008: one signature's clause, header.d/i/s/a/b; the reason only
    when it did not pass. What the gateway writes and `mailwarden dkim verify` prints."""
    status = str(result.result)
    return _dkim(
        status,
        domain=result.domain or None,
        selector=result.selector or None,
        algorithm=result.algorithm or None,
        b=result.header_b or None,
        identity=result.identity or None,
        reason=result.reason or None if status != "pass" else None,
    )


def _dkim(
    result: str,
    *,
    domain: str | None = None,
    selector: str | None = None,
    algorithm: str | None = None,
    b: str | None = None,
    identity: str | None = None,
    reason: str | None = None,
    comment: str | None = None,
) -> ResInfo:
    return ResInfo(
        "dkim",
        str(result),
        reason=reason,
        properties=_props(
            ("header", "d", domain),
            ("header", "i", identity),
            ("header", "s", selector),
            ("header", "a", algorithm),
            ("header", "b", b),
        ),
        comments=(comment,) if comment else (),
    )


class AuthResultsBuilder:
    """Collects resinfo clauses in order; `build()` gives the value, `format_field()` the field."""

    def __init__(self, authserv_id: str, *, version: int | None = None) -> None:
        self.authserv_id = authserv_id
        self.version = version
        self._results: list[ResInfo] = []

    def add(self, resinfo: ResInfo) -> AuthResultsBuilder:
        """Any clause, e.g. one parsed from an earlier field or an unregistered method."""
        self._results.append(resinfo)
        return self

    def extend(self, resinfos: Iterable[ResInfo]) -> AuthResultsBuilder:
        self._results.extend(resinfos)
        return self

    def spf(self, result: SPFResult, *, comment: bool = True) -> AuthResultsBuilder:
        """RFC 8601 §2.7.2: spf with smtp.mailfrom (MAIL FROM identity) or smtp.helo."""
        return self.add(spf_resinfo(result, comment=comment))

    def dkim(
        self,
        result: str,
        *,
        domain: str | None = None,
        selector: str | None = None,
        algorithm: str | None = None,
        b: str | None = None,
        identity: str | None = None,
        reason: str | None = None,
        comment: str | None = None,
    ) -> AuthResultsBuilder:
        """RFC 8601 §2.7.1 / RFC 6008: one clause per signature, header.d/i/s/a/b (`b`: the
        header.b prefix of the signature, written as given)."""
        return self.add(
            _dkim(
                result,
                domain=domain,
                selector=selector,
                algorithm=algorithm,
                b=b,
                identity=identity,
                reason=reason,
                comment=comment,
            )
        )

    def dkim_result(self, result: DKIMReport) -> AuthResultsBuilder:
        """A dkim clause from a verification result; reason only when it did not pass."""
        return self.add(dkim_resinfo(result))

    def dmarc(self, result: DMARCResult, *, comment: bool = True) -> AuthResultsBuilder:
        """RFC 7489 §11.2 / RFC 9989: dmarc with header.from and policy.dmarc."""
        notes: list[str] = []
        # str() of these StrEnums is their value (cheaper than .value on Python 3.11)
        if comment and result.record is not None and result.requested_policy is not None:
            tag = str(result.policy_tag) if result.policy_tag else "p"
            notes.append(f"{tag}={result.requested_policy!s} dis={result.disposition!s}")
            if result.override_reason is not None:
                notes[-1] += f" override={result.override_reason!s}"
        word = str(result.result)
        failing = word in ("temperror", "permerror")
        return self.add(
            ResInfo(
                "dmarc",
                word,
                reason=result.reason if failing else None,
                properties=_props(
                    ("header", "from", result.domain or None),
                    ("policy", "dmarc", str(result.policy) if result.policy else None),
                ),
                comments=tuple(notes),
            )
        )

    def arc(
        self,
        result: str,
        *,
        remote_ip: str | None = None,
        oldest_pass: int | None = None,
        reason: str | None = None,
        comment: str | None = None,
    ) -> AuthResultsBuilder:
        """RFC 8617 §10.2: arc with smtp.remote-ip and header.oldest-pass."""
        oldest = str(oldest_pass) if oldest_pass is not None else None
        return self.add(
            ResInfo(
                "arc",
                str(result),
                reason=reason,
                properties=_props(
                    ("header", "oldest-pass", oldest), ("smtp", "remote-ip", remote_ip)
                ),
                comments=(comment,) if comment else (),
            )
        )

    def iprev(
        self, result: str, *, ip: str, hostname: str | None = None, reason: str | None = None
    ) -> AuthResultsBuilder:
        """RFC 8601 §2.7.3: iprev with policy.iprev (the address); the name as a comment."""
        return self.add(
            ResInfo(
                "iprev",
                str(result),
                reason=reason,
                properties=(Property("policy", "iprev", ip, (hostname,) if hostname else ()),),
            )
        )

    def dnswl(
        self,
        result: str,
        *,
        zone: str,
        ip: str | None = None,
        txt: str | None = None,
        reason: str | None = None,
    ) -> AuthResultsBuilder:
        """RFC 8904 §3: dnswl with dns.zone, policy.ip and policy.txt."""
        return self.add(
            ResInfo(
                "dnswl",
                str(result),
                reason=reason,
                properties=_props(
                    ("dns", "zone", zone), ("policy", "ip", ip), ("policy", "txt", txt)
                ),
            )
        )

    def build(self) -> AuthenticationResults:
        return AuthenticationResults(self.authserv_id, tuple(self._results), self.version)

    def format_value(self) -> str:
        return self.build().format_value()

    def format_field(self, *, width: int = 78, linesep: str = "\r\n") -> str:
        return self.build().format_field(width=width, linesep=linesep)
