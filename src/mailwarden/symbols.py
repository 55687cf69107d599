"""Named findings the checks hand to the scoring policy.

Every network check (iprev, HELO, DNS lists, ...) reports what it saw as `Symbol`s: a stable
name the policy can weigh (`IPREV_FAIL`, `RBL_ZEN_SBL`, `DNSWL_HI`), the score the check
suggests by default, and a detail for logs and headers. Checks never reject by themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mailwarden.frozen import quick_init

__all__ = ["Symbol"]


@quick_init
@dataclass(frozen=True, slots=True)
class Symbol:
    """One finding: `name` (upper-case, stable), a default `score` (negative is good news)
    and a `detail` saying what was seen."""

    name: str
    score: float = 0.0
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "score": self.score, "detail": self.detail}

    def __str__(self) -> str:
        return f"{self.name}({self.score:g})" + (f": {self.detail}" if self.detail else "")
