"""The `[signing]` section: DKIM signing of our own mail and the rotation of its keys.

The keys themselves live in the data directory (`<data_dir>/dkim`), managed by
`mailwarden dkim rotate`; this section says how they are made, used and rotated.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import UTC, datetime

from mailwarden.dkim import DEFAULT_SIGNED_HEADERS, KeyType, parse_canonicalization
from mailwarden.dns import is_domain_name
from mailwarden.schema import InvalidSetting, setting

__all__ = [
    "DEFAULT_OVERSIGNED",
    "SELECTOR_FIELDS",
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
