"""mailwarden.policy: turn every check's symbols into one explained action.

`decide(Facts(symbols=..., dmarc_disposition=...), config) -> Verdict` is pure (no I/O);
`load_policy_config(path)` reads the `[policy]` table of a TOML file, reporting mistakes with
file, key and reason; `spf_symbols`, `dkim_symbols`, `dmarc_symbols` and `arc_symbols` turn the
authentication verdicts into symbols.
"""

from .auth_symbols import arc_symbols, dkim_symbols, dmarc_symbols, spf_symbols
from .config import (
    DEFAULT_SCORES,
    Action,
    ConfigError,
    PolicyConfig,
    TemperrorHandling,
    load_policy_config,
    policy_config_from_mapping,
)
from .engine import Facts, ScoredSymbol, SmtpReply, Verdict, decide

__all__ = [
    "DEFAULT_SCORES",
    "Action",
    "ConfigError",
    "Facts",
    "PolicyConfig",
    "ScoredSymbol",
    "SmtpReply",
    "TemperrorHandling",
    "Verdict",
    "arc_symbols",
    "decide",
    "dkim_symbols",
    "dmarc_symbols",
    "load_policy_config",
    "policy_config_from_mapping",
    "spf_symbols",
]
