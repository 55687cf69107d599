"""mailwarden.signing: DKIM signing of outgoing mail for its From domain (`[signing]`).

STAND-IN (issue 16 §1): the minimal signer the submission server needs until the signing and
key-rotation work (issue 16 §2) lands with the same interface: `Signer(settings.signing)` and
`await signer.sign(message, from_domain)`, which returns the DKIM-Signature fields to prepend
(one per key configured for the domain, RSA and Ed25519 together per RFC 8463 §6), or b""
when no key is configured for the domain. Relaxed/relaxed, no `l=`, the default header fields
over-signed (mailwarden.dkim.sign_many).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mailwarden.dkim import SigningKey, load_private_key, sign_many
from mailwarden.dns import is_domain_name, normalize
from mailwarden.schema import InvalidSetting, setting

__all__ = ["KeySettings", "Signer", "SigningSettings"]


def _domain(value: object) -> str:
    if not isinstance(value, str) or not is_domain_name(normalize(value)):
        raise ValueError(f"expected a domain name, got {value!r}")
    return normalize(value)


def _selector(value: object) -> str:
    if not isinstance(value, str) or not is_domain_name(value) or "." in value.strip("."):
        raise ValueError(f"expected a selector (one DNS label), got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class KeySettings:
    """`[[signing.keys]]`: one private key and where its public key is published."""

    domain: str = setting("", convert=_domain)
    selector: str = setting("", convert=_selector)
    key_file: str = setting("", path=True)  # PEM, or a base64 Ed25519 seed

    def validate(self) -> None:
        for name in ("domain", "selector", "key_file"):
            if not getattr(self, name):
                raise InvalidSetting(name, "is required")


@dataclass(frozen=True, slots=True)
class SigningSettings:
    """`[signing]`: the keys outgoing mail is signed with."""

    keys: tuple[KeySettings, ...] = ()


class Signer:
    """Signs a message for its From domain with every key configured for that domain.
    Raises ValueError at construction for a key file that cannot be read."""

    def __init__(self, config: SigningSettings) -> None:
        self.keys: dict[str, list[SigningKey]] = {}
        for entry in config.keys:
            try:
                key = load_private_key(Path(entry.key_file).read_bytes())
            except OSError as exc:
                raise ValueError(f"cannot read {entry.key_file}: {exc.strerror or exc}") from None
            self.keys.setdefault(entry.domain, []).append(SigningKey(entry.selector, key))

    def domains(self) -> list[str]:
        return sorted(self.keys)

    async def sign(self, message: bytes, from_domain: str) -> bytes:
        """The DKIM-Signature fields to prepend to `message`, or b"" without a key."""
        keys = self.keys.get(normalize(from_domain)) if from_domain else None
        if not keys:
            return b""
        return b"".join(sign_many(message, normalize(from_domain), keys))
