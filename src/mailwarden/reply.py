"""An SMTP reply, the one answer type shared by the policy and every front end."""

from __future__ import annotations

from dataclasses import dataclass

from mailwarden.frozen import quick_init

__all__ = ["SMTPReply"]


@quick_init
@dataclass(frozen=True, slots=True)
class SMTPReply:
    """An SMTP reply: code (RFC 5321 §4.2), enhanced status code (RFC 3463), text."""

    code: int
    status: str
    text: str

    def __str__(self) -> str:
        return (
            f"{self.code} {self.status} {self.text}" if self.status else f"{self.code} {self.text}"
        )

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500

    @property
    def permanent(self) -> bool:
        return self.code >= 500
