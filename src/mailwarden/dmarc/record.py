"""DMARC policy records: the tag-value grammar of RFC 9989 §4.7-4.8, plus RFC 7489's pct/rf/ri.

`parse_record(text)` raises `RecordError` only when the text is not a DMARC record at all (no
leading ``v=DMARC1``). Any other defect is tolerated as RFC 9989 §4.7 requires: a malformed term
or an invalid value is discarded in favour of the default and noted in `DMARCRecord.errors`;
unknown tags are ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from mailwarden.frozen import quick_init

__all__ = [
    "PSD",
    "Alignment",
    "DMARCPolicy",
    "DMARCRecord",
    "RecordError",
    "ReportURI",
    "is_dmarc_record",
    "parse_record",
]


class DMARCPolicy(StrEnum):
    """Domain Owner Assessment Policy values (p, sp, np) and the disposition applied."""

    NONE = "none"
    QUARANTINE = "quarantine"
    REJECT = "reject"

    def lowered(self) -> DMARCPolicy:
        """One level less strict (RFC 9989 t=y, RFC 7489 §6.6.4 pct sampling)."""
        if self is DMARCPolicy.REJECT:
            return DMARCPolicy.QUARANTINE
        return DMARCPolicy.NONE


class Alignment(StrEnum):
    """adkim / aspf: relaxed or strict identifier alignment (RFC 9989 §4.7)."""

    RELAXED = "r"
    STRICT = "s"


class PSD(StrEnum):
    """psd=: y (a Public Suffix Domain), n (an Organizational Domain), u (tree walk decides)."""

    YES = "y"
    NO = "n"
    UNKNOWN = "u"


class RecordError(ValueError):
    """The text is not a DMARC record (its first tag is not v=DMARC1)."""


@quick_init
@dataclass(frozen=True, slots=True)
class ReportURI:
    """One rua/ruf destination; `max_size` is RFC 7489's ``!size`` suffix (RFC 9989 ignores it)."""

    uri: str
    max_size: str | None = None

    @property
    def scheme(self) -> str:
        return self.uri.partition(":")[0].lower()


@quick_init
@dataclass(frozen=True, slots=True)
class DMARCRecord:
    """A parsed DMARC record; defaults filled in, as RFC 9989 §4.7 defines them.

    `p` is None when the tag is absent or invalid (see `policy_usable`). `tags` holds every
    known tag as written (lower-cased name), for display and reports.
    """

    raw: str
    p: DMARCPolicy | None = None
    sp: DMARCPolicy | None = None
    np: DMARCPolicy | None = None
    adkim: Alignment = Alignment.RELAXED
    aspf: Alignment = Alignment.RELAXED
    fo: tuple[str, ...] = ("0",)
    rua: tuple[ReportURI, ...] = ()
    ruf: tuple[ReportURI, ...] = ()
    psd: PSD = PSD.UNKNOWN
    testing: bool = False  # t=y
    pct: int | None = None  # RFC 7489 only
    rf: tuple[str, ...] = ()  # RFC 7489 only
    ri: int | None = None  # RFC 7489 only
    tags: tuple[tuple[str, str], ...] = ()
    errors: tuple[str, ...] = ()  # terms discarded (RFC 9989 §4.7), in plain words
    invalid_policy_tags: tuple[str, ...] = ()  # p/sp/np present but not valid

    def has(self, tag: str) -> bool:
        return any(name == tag for name, _ in self.tags)

    @property
    def policy_usable(self) -> bool:
        """A valid p, and no invalid sp/np (RFC 9989 §4.7.1 policy discovery)."""
        return self.p is not None and not self.invalid_policy_tags

    @property
    def is_rfc7489(self) -> bool:
        """An RFC 7489-style record: it carries pct and no RFC 9989 t tag."""
        return self.pct is not None and not self.has("t")

    @property
    def subdomain_policy(self) -> DMARCPolicy | None:
        """sp, else p (RFC 9989 §4.7 sp)."""
        return self.sp if self.sp is not None else self.p

    @property
    def nonexistent_policy(self) -> DMARCPolicy | None:
        """np, else sp, else p (RFC 9989 §4.7 np)."""
        return self.np if self.np is not None else self.subdomain_policy


_VERSION = re.compile(r"v[ \t]*=[ \t]*DMARC1[ \t]*(?:;|$)")
_TAG = re.compile(r"([A-Za-z]+)[ \t]*=[ \t]*(.*)", re.DOTALL)
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s,!]+")
_SIZE = re.compile(r"[0-9]+[kmgtKMGT]?")
_FO = frozenset({"0", "1", "d", "s"})


def is_dmarc_record(text: str) -> bool:
    """RFC 9989 §4.8: a record starts with the v tag, exactly "DMARC1" (case-sensitive)."""
    return _VERSION.match(text.lstrip(" \t")) is not None


def _uri_list(value: str) -> tuple[tuple[ReportURI, ...], list[str]]:
    uris: list[ReportURI] = []
    bad: list[str] = []
    for item in value.split(","):
        item = item.strip(" \t")
        uri, bang, size = item.partition("!")
        if _URI.fullmatch(uri) and (not bang or _SIZE.fullmatch(size)):
            uris.append(ReportURI(uri, size if bang else None))
        else:
            bad.append(item)
    return tuple(uris), bad


def parse_record(text: str) -> DMARCRecord:
    """Parse one DMARC TXT record (its character-strings already joined)."""
    if not is_dmarc_record(text):
        raise RecordError("not a DMARC record: it must start with v=DMARC1")
    errors: list[str] = []
    invalid_policy: list[str] = []
    seen: dict[str, str] = {}
    tags: list[tuple[str, str]] = []
    for term in text.split(";")[1:]:
        term = term.strip(" \t\r\n")
        if not term:
            continue
        match = _TAG.fullmatch(term)
        if match is None:
            errors.append(f"malformed term {term!r} ignored")
            continue
        name, value = match.group(1).lower(), match.group(2).strip(" \t")
        if name in seen:
            errors.append(f"duplicate tag {name!r} ignored")
            continue
        seen[name] = value
        tags.append((name, value))

    values: dict[str, object] = {}

    def policy(name: str) -> None:
        if name not in seen:
            return
        try:
            values[name] = DMARCPolicy(seen[name].lower())
        except ValueError:
            errors.append(f"invalid {name}={seen[name]!r}")
            invalid_policy.append(name)

    for name in ("p", "sp", "np"):
        policy(name)
    for name in ("adkim", "aspf"):
        if name in seen:
            try:
                values[name] = Alignment(seen[name].lower())
            except ValueError:
                errors.append(f"invalid {name}={seen[name]!r}, using r")
    if "psd" in seen:
        try:
            values["psd"] = PSD(seen["psd"].lower())
        except ValueError:
            errors.append(f"invalid psd={seen['psd']!r}, using u")
    if "t" in seen:
        flag = seen["t"].lower()
        if flag in ("y", "n"):
            values["testing"] = flag == "y"
        else:
            errors.append(f"invalid t={seen['t']!r}, using n")
    if "fo" in seen:
        options = tuple(o.strip(" \t") for o in seen["fo"].split(":"))
        if options and all(o in _FO for o in options):
            values["fo"] = options
        else:
            errors.append(f"invalid fo={seen['fo']!r}, using 0")
    for name in ("rua", "ruf"):
        if name in seen:
            uris, bad = _uri_list(seen[name])
            values[name] = uris
            errors.extend(f"invalid {name} URI {item!r} ignored" for item in bad)
    if "pct" in seen:
        if seen["pct"].isascii() and seen["pct"].isdigit() and 0 <= int(seen["pct"]) <= 100:
            values["pct"] = int(seen["pct"])
        else:
            errors.append(f"invalid pct={seen['pct']!r} ignored")
    if "ri" in seen:
        if seen["ri"].isascii() and seen["ri"].isdigit():
            values["ri"] = int(seen["ri"])
        else:
            errors.append(f"invalid ri={seen['ri']!r} ignored")
    if "rf" in seen:
        values["rf"] = tuple(f.strip(" \t").lower() for f in seen["rf"].split(":"))
    return DMARCRecord(
        raw=text,
        tags=tuple(tags),
        errors=tuple(errors),
        invalid_policy_tags=tuple(invalid_policy),
        **values,  # type: ignore[arg-type]
    )
