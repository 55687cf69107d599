"""The `[signing]` section: DKIM signing of our own mail and the rotation of its keys.

The rotated keys live in the data directory (`<data_dir>/dkim`), managed by
`mailwarden dkim rotate`; this section says how they are made, used and rotated, and may
name keys of one's own (`[[signing.keys]]`) that sign beside them.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mailwarden.dkim import (
    DEFAULT_SIGNED_HEADERS,
    KeyType,
    PrivateKey,
    load_private_key,
    parse_canonicalization,
)
from mailwarden.dns import is_domain_name, normalize
from mailwarden.schema import InvalidSetting, setting

__all__ = [
    "DEFAULT_OVERSIGNED",
    "SELECTOR_FIELDS",
    "KeySettings",
    "SigningSettings",
    "render_selector",
]

# Over-signed by default (RFC 6376 §8.15): the fields a replay would add a second copy of to
# change what the reader sees, while the signature still verifies.
DEFAULT_OVERSIGNED = ("from", "to", "cc", "subject", "date", "reply-to")

# The placeholders of a selector template.
SELECTOR_FIELDS = ("algorithm", "yyyy", "mm", "dd", "yyyymm", "yyyymmdd")


def render_selector(template: str, algorithm: KeyType, when: float) -> str:
    """The selector `template` names for a key of `algorithm` made at `when` (lower case).

    ValueError when the template uses an unknown placeholder or gives no valid selector."""
    moment = datetime.fromtimestamp(when, UTC)
    values = {
        "algorithm": algorithm.value,
        "yyyy": f"{moment.year:04d}",
        "mm": f"{moment.month:02d}",
        "dd": f"{moment.day:02d}",
        "yyyymm": f"{moment.year:04d}{moment.month:02d}",
        "yyyymmdd": f"{moment.year:04d}{moment.month:02d}{moment.day:02d}",
    }
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ValueError(f"selector template {template!r}: {exc}") from None
    for name in fields:
        if name not in values:
            known = ", ".join("{" + f + "}" for f in SELECTOR_FIELDS)
            raise ValueError(f"selector template {template!r}: unknown {{{name}}} (known: {known})")
    selector = template.format_map(values).lower()
    if not is_domain_name(selector) or len(selector) > 63 - 2:  # room for a suffix
        raise ValueError(f"selector template {template!r} gives {selector!r}, not a selector")
    return selector


def _key_type(value: object) -> KeyType:
    try:
        return KeyType(str(value).lower())
    except ValueError:
        raise ValueError(f'expected "rsa" or "ed25519", got {value!r}') from None


def _header(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a header field name, got {value!r}")
    name = value.strip().lower()
    if not all(33 <= ord(c) <= 126 and c != ":" for c in name):
        raise ValueError(f"not a header field name: {value!r}")
    return name


def _canonicalization(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f'expected "header/body" such as "relaxed/relaxed", got {value!r}')
    header, body = parse_canonicalization(value.strip().lower())  # ValueError when wrong
    return f"{header}/{body}"


def _domain(value: object) -> str:
    if not isinstance(value, str) or not is_domain_name(normalize(value)):
        raise ValueError(f"expected a domain name, got {value!r}")
    return normalize(value)


def _selector(value: object) -> str:
    if not isinstance(value, str) or not is_domain_name(value.strip().lower()):
        raise ValueError(f"expected a selector, got {value!r}")
    return value.strip().lower()


@dataclass(frozen=True, slots=True)
class KeySettings:
    """`[[signing.keys]]`: a key of one's own (not rotated by mailwarden) and where its
    public key is published; it signs its domain's mail beside the rotated keys."""

    domain: str = setting("", convert=_domain)
    selector: str = setting("", convert=_selector)
    key_file: str = setting("", path=True)  # PEM, or a base64 Ed25519 seed

    def validate(self) -> None:
        for name in ("domain", "selector", "key_file"):
            if not getattr(self, name):
                raise InvalidSetting(name, "is required")

    def load(self) -> PrivateKey:
        """The private key; ValueError naming the file when it cannot be read."""
        try:
            return load_private_key(Path(self.key_file).read_bytes())
        except OSError as exc:
            raise ValueError(f"cannot read {self.key_file}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise ValueError(f"{self.key_file}: {exc}") from None


@dataclass(frozen=True, slots=True)
class SigningSettings:
    """`[signing]`: what every key signs, how rotation names, schedules and retires keys."""

    algorithms: tuple[KeyType, ...] = setting((KeyType.RSA, KeyType.ED25519), each=_key_type)
    rsa_bits: int = setting(2048, min=2048, max=4096)  # RFC 8301 §3.2; 2048 is the norm
    selector_template: str = "{algorithm}{yyyymm}"
    headers: tuple[str, ...] = setting(DEFAULT_SIGNED_HEADERS, each=_header)
    oversign: tuple[str, ...] = setting(DEFAULT_OVERSIGNED, each=_header)
    canonicalization: str = setting("relaxed/relaxed", convert=_canonicalization)
    rotate_after_days: int = setting(182, min=0, max=3650)  # 0: no scheduled rotation
    grace_days: int = setting(7, min=7, max=365)  # the old record stays published this long
    max_key_age_days: int = setting(200, min=1, max=3650)  # `domain check` warns past it
    check_interval: float = setting(3600.0, min=10, max=86400)  # seconds between stage checks
    keys: tuple[KeySettings, ...] = ()  # keys of one's own, beside the rotated ones

    def validate(self) -> None:
        if not self.algorithms:
            raise InvalidSetting("algorithms", 'name at least one of "rsa", "ed25519"')
        if len(set(self.algorithms)) != len(self.algorithms):
            raise InvalidSetting("algorithms", "an algorithm is named twice")
        if "from" not in self.headers:  # RFC 6376 §5.4: From must be signed
            raise InvalidSetting("headers", 'must include "from" (RFC 6376 §5.4)')
        try:
            names = {render_selector(self.selector_template, a, 0) for a in self.algorithms}
        except ValueError as exc:
            raise InvalidSetting("selector_template", str(exc)) from None
        if len(names) != len(self.algorithms):
            raise InvalidSetting(
                "selector_template", "gives one selector for several algorithms: add {algorithm}"
            )

    @property
    def canonicalization_pair(self) -> tuple[str, str]:
        """("relaxed", "relaxed"): the header and body canonicalizations, as sign_many wants."""
        header, _, body = self.canonicalization.partition("/")
        return header, body
