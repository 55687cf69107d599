"""The error of configuration that reaches users: the file, the key and the reason."""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """A configuration mistake: which file (or command-line option), which key, and why.

    `key` is the dotted path (`gateway.limits.max_errors`), or "" when the mistake is not
    about one key (an unreadable file, a TOML syntax error: the reason says where). A source
    that is a command-line option stands for its key in the message.
    """

    def __init__(self, source: str, key: str, reason: str) -> None:
        # an option names its key itself: "--listen: ...", not "--listen: gateway.listen: ..."
        where = f"{source}: {key}" if key and not source.startswith("-") else source
        super().__init__(f"{where}: {reason}")
        self.source = source
        self.key = key
        self.reason = reason
