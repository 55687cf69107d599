"""mailwarden.policy: turn every check's symbols into one explained action.

`decide(Facts(symbols=..., dmarc_disposition=...), config) -> Verdict` is pure (no I/O);
`PolicyConfig` is the `[policy]` section of the settings; `spf_symbols`, `dkim_symbols`,
`dmarc_symbols` and `arc_symbols` turn the authentication verdicts into symbols.
"""

from .auth_symbols import arc_symbols, dkim_symbols, dmarc_symbols, spf_symbols
from .config import (
    DEFAULT_SCORES,
    Action,
    AuthorHandling,
    HeaderSyntax,
    PolicyConfig,
    TemperrorHandling,
    Thresholds,
)
from .engine import Facts, ScoredSymbol, Verdict, decide

__all__ = [
    "DEFAULT_SCORES",
    "Action",
    "AuthorHandling",
    "Facts",
    "HeaderSyntax",
    "PolicyConfig",
    "ScoredSymbol",
    "TemperrorHandling",
    "Thresholds",
    "Verdict",
    "arc_symbols",
    "decide",
    "dkim_symbols",
    "dmarc_symbols",
    "spf_symbols",
]
