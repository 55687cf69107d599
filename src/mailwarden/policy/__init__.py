"""mailwarden.policy: turn every check's symbols into one explained action.

`decide(Facts(symbols=..., dmarc_disposition=...), config) -> Verdict` is pure (no I/O);
`PolicyConfig` is the `[policy]` section of the settings. The policy is the one place that
names and scores symbols: `spf_symbols`, `dkim_symbols`, `dmarc_symbols` and `arc_symbols` turn
the authentication verdicts into symbols, `iprev_symbols`, `helo_symbols` and `dnsbl_symbols`
the connection-time checks' results (typed, with reason codes, unscored); `PolicyConfig.score_of`
scores each: [policy.scores], then a DNS list definition's score, then `DEFAULT_SCORES`.
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
from .network_symbols import (
    HELO_SYMBOLS,
    ListedSymbol,
    dnsbl_symbols,
    helo_symbols,
    iprev_symbols,
)

__all__ = [
    "DEFAULT_SCORES",
    "HELO_SYMBOLS",
    "Action",
    "AuthorHandling",
    "Facts",
    "HeaderSyntax",
    "ListedSymbol",
    "PolicyConfig",
    "ScoredSymbol",
    "TemperrorHandling",
    "Thresholds",
    "Verdict",
    "arc_symbols",
    "decide",
    "dkim_symbols",
    "dmarc_symbols",
    "dnsbl_symbols",
    "helo_symbols",
    "iprev_symbols",
    "spf_symbols",
]
