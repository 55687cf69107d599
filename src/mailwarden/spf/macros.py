"""SPF macros (RFC 7208 §7): what each macro letter expands to in one check (§7.2), and the
expansion of domain-specs and explanation strings (§7.3)."""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from mailwarden.dns import IPAddress

from .record import Macro, MacroString

__all__ = ["Macros"]


class Macros:
    """The values macro letters expand to for one check_host() run (RFC 7208 §7.2).

    `validated_names` gives the client's validated PTR names, needed by %{p} only (it is the
    one letter that needs DNS); `receiver` is %{r}, `clock` gives %{t}.
    """

    def __init__(
        self,
        ip: IPAddress,
        local: str,
        sender_domain: str,
        helo: str,
        *,
        receiver: str,
        clock: Callable[[], float],
        validated_names: Callable[[], Awaitable[list[str]]],
    ) -> None:
        self.ip = ip
        self.local = local
        self.sender_domain = sender_domain
        self.helo = helo
        self.receiver = receiver
        self.clock = clock
        self.validated_names = validated_names

    @functools.cached_property
    def ip_text(self) -> str:
        return str(self.ip)

    async def expand_domain(self, spec: MacroString, domain: str) -> str:
        """Expand a domain-spec; over-long results lose labels on the left (RFC 7208 §7.3)."""
        text = await self.expand(spec, domain)
        if text.endswith("."):
            text = text[:-1]
        while len(text) > 253 and "." in text:
            text = text.split(".", 1)[1]
        return text.lower()

    async def expand(self, spec: MacroString, domain: str, *, explanation: bool = False) -> str:
        if spec.is_literal:
            return "".join(spec.parts)  # type: ignore[arg-type]
        out: list[str] = []
        for part in spec.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                # only %{p} needs DNS: the other letters expand without awaiting
                value = await self.p_macro(domain) if part.letter == "p" else None
                out.append(self.expand_macro(part, domain, value))
        return "".join(out)

    def expand_macro(self, macro: Macro, domain: str, value: str | None = None) -> str:
        """One macro (RFC 7208 §7.3); `value` is the letter's value when already known."""
        if value is None:
            value = self.macro_value(macro.letter, domain)
        if macro.delimiters or macro.reverse or macro.digits is not None:
            if macro.delimiters in ("", "."):
                parts = value.split(".")
            else:
                parts = re.split("[" + re.escape(macro.delimiters) + "]", value)
            if macro.reverse:
                parts.reverse()
            if macro.digits is not None:
                parts = parts[-macro.digits :]
            value = ".".join(parts)
        if macro.url_escape:  # RFC 7208 §7.3: upper-case letters are URL-escaped
            value = quote(value, safe="-._~")
        return value

    def macro_value(self, letter: str, domain: str) -> str:
        """The value of a macro letter other than "p" (RFC 7208 §7.2)."""
        if letter == "s":
            return f"{self.local}@{self.sender_domain}"
        if letter == "l":
            return self.local
        if letter == "o":
            return self.sender_domain
        if letter == "d":
            return domain
        if letter == "i":
            if self.ip.version == 4:
                return self.ip_text
            return ".".join(self.ip.exploded.replace(":", ""))  # RFC 7208 §7.3: nibbles
        if letter == "v":
            return "in-addr" if self.ip.version == 4 else "ip6"
        if letter == "h":
            return self.helo
        if letter == "c":
            return self.ip_text
        if letter == "r":
            return self.receiver
        return str(int(self.clock()))  # "t"

    async def p_macro(self, domain: str) -> str:
        """RFC 7208 §7.3: a validated name, the domain or a subdomain of it preferred."""
        names = await self.validated_names()
        for name in names:
            if name == domain or name.endswith("." + domain):
                return name
        return names[0] if names else "unknown"
