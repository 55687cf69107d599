"""The forwarding rule set: an alias file of `address: target, target` lines.

    # comments and blank lines are ignored
    alice@b.example: alice@gmail.example
    bob@b.example    bob@b.example, robert@elsewhere.example   # keep a copy here too

The address and its targets are separated by a colon or by white space, targets by commas or
white space (Postfix's aliases(5) and virtual(5) styles). Addresses are compared in lower
case, as Postfix looks keys up. Each address appears once; a target is not expanded again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MAX_TARGETS", "AliasError", "Aliases", "normalize_address"]

MAX_TARGETS = 1000  # targets of one address
MAX_ADDRESS = 254  # RFC 5321 §4.5.3.1.3 (a path of 256 with its angle brackets)


class AliasError(ValueError):
    """The alias file cannot be used; the message names the line."""


def normalize_address(text: str) -> str:
    """`local@domain` in lower case; ValueError when it is not a plain address."""
    address = text.strip().lower()
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or "." not in domain:
        raise ValueError(f"not an address: {text!r}")
    if len(address) > MAX_ADDRESS:
        raise ValueError(f"address longer than {MAX_ADDRESS} characters: {text[:40]!r}...")
    if any(ord(c) <= 0x20 or c in '\x7f<>,:;"()[]\\' for c in address):
        raise ValueError(f"not a plain address: {text!r}")
    if ".." in domain or domain.startswith(".") or domain.endswith("."):
        raise ValueError(f"not an address: {text!r}")
    return address


@dataclass(frozen=True, slots=True)
class Aliases:
    """Forwarding address -> its targets."""

    table: Mapping[str, tuple[str, ...]]

    @classmethod
    def parse(cls, text: str, source: str = "aliases") -> Aliases:
        table: dict[str, tuple[str, ...]] = {}
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            where = f"{source}, line {number}"
            key_text, rest = _split_key(line)
            if not rest.strip():
                raise AliasError(f"{where}: {key_text!r} has no target")
            try:
                key = normalize_address(key_text)
                targets = tuple(
                    dict.fromkeys(normalize_address(t) for t in rest.replace(",", " ").split() if t)
                )
            except ValueError as exc:
                raise AliasError(f"{where}: {exc}") from None
            if key in table:
                raise AliasError(f"{where}: {key} is listed twice")
            if len(targets) > MAX_TARGETS:
                raise AliasError(f"{where}: more than {MAX_TARGETS} targets")
            table[key] = targets
        return cls(table)

    @classmethod
    def load(cls, path: str | Path) -> Aliases:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise AliasError(f"cannot read {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise AliasError(f"{path}: not UTF-8 text (offset {exc.start})") from None
        return cls.parse(text, str(path))

    def targets(self, address: str) -> tuple[str, ...] | None:
        """The targets of a forwarding address, or None when it does not forward."""
        return self.table.get(address.strip().lower())

    def __len__(self) -> int:
        return len(self.table)


def _split_key(line: str) -> tuple[str, str]:
    colon = line.find(":")
    space = next((i for i, c in enumerate(line) if c in " \t"), -1)
    if colon >= 0 and (space < 0 or colon < space):
        return line[:colon], line[colon + 1 :]
    if space >= 0:
        return line[:space], line[space:]
    return line, ""
