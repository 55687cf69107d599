"""Policy configuration: symbol scores, thresholds and hard rules, from TOML or defaults.

Every error names the file, the key and the reason, so a mistake is found at start-up and not
when the first message arrives.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_SCORES",
    "Action",
    "ConfigError",
    "PolicyConfig",
    "TemperrorHandling",
    "load_policy_config",
    "policy_config_from_mapping",
]


class Action(StrEnum):
    """What happens to a message, mildest first (the order of `SEVERITY`)."""

    ACCEPT = "accept"
    GREYLIST = "greylist"
    ADD_HEADER = "add_header"
    SOFT_REJECT = "soft_reject"
    REJECT = "reject"


SEVERITY = {action: rank for rank, action in enumerate(Action)}


class TemperrorHandling(StrEnum):
    """What to do when a check that would decide could not finish (DNS failure)."""

    ACCEPT = "accept"  # judge on what is known; a temperror never counts as a pass
    TEMPFAIL = "tempfail"  # answer 4xx: the client retries later


class ConfigError(ValueError):
    """A configuration mistake: which file, which key, and why."""

    def __init__(self, source: str, key: str, reason: str) -> None:
        super().__init__(f"{source}: {key}: {reason}")
        self.source = source
        self.key = key
        self.reason = reason


# Default scores of the symbols every check can produce (positive is suspicious). Checks carry
# their own defaults too; this table wins, and the configuration file wins over both.
DEFAULT_SCORES: dict[str, float] = {
    # SPF (RFC 7208 §8)
    "SPF_PASS": -0.5,
    "SPF_FAIL": 3.0,
    "SPF_SOFTFAIL": 1.0,
    "SPF_NEUTRAL": 0.2,
    "SPF_NONE": 0.5,
    "SPF_PERMERROR": 1.0,
    "SPF_TEMPERROR": 0.0,
    "SPF_HELO_FAIL": 1.0,
    "SPF_HELO_PASS": 0.0,
    # DKIM (RFC 6376, RFC 8601 §2.7.1)
    "DKIM_VALID": -0.5,
    "DKIM_INVALID": 1.0,
    "DKIM_PERMERROR": 0.5,
    "DKIM_TEMPERROR": 0.0,
    "DKIM_POLICY": 0.5,
    "DKIM_NONE": 0.0,
    # DMARC (RFC 9989): p=none never changes handling (§5.4), so its symbol weighs nothing
    "DMARC_PASS": -1.0,
    "DMARC_POLICY_REJECT": 8.0,
    "DMARC_POLICY_QUARANTINE": 4.0,
    "DMARC_POLICY_NONE": 0.0,
    "DMARC_NONE": 0.0,
    "DMARC_PERMERROR": 0.0,
    "DMARC_TEMPERROR": 0.0,
    "DMARC_NOT_EVALUATED": 1.0,
    # ARC (RFC 8617)
    "ARC_PASS": 0.0,
    "ARC_FAIL": 0.5,
    "ARC_TRUSTED_PASS": -1.0,
    # strict SMTP (the gateway)
    "PREGREET": 6.0,
    "PIPELINING_ABUSE": 3.0,
    "BARE_LF": 2.0,
}

# Symbols whose weight is fixed by a standard and cannot be configured.
FIXED_SCORES = {"DMARC_POLICY_NONE": 0.0}

# Symbols that mean a deciding check could not finish.
DEFAULT_TEMPERROR_SYMBOLS = ("DMARC_TEMPERROR", "SPF_TEMPERROR", "DKIM_TEMPERROR")

# Listings trusted enough to refuse on alone (Spamhaus: spam sources, hijacked networks,
# exploited hosts, and the CSS list of low-reputation senders).
DEFAULT_HARD_REJECT = ("RBL_ZEN_SBL", "RBL_ZEN_CSS", "RBL_ZEN_XBL", "RBL_ZEN_DROP")


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """Scores, thresholds and rules; `policy_config_from_mapping` builds it from TOML data."""

    scores: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_SCORES))
    greylist_threshold: float | None = 4.0
    add_header_threshold: float | None = 6.0
    soft_reject_threshold: float | None = None
    reject_threshold: float | None = 15.0
    dmarc_reject: bool = True  # honour p=reject by refusing (RFC 9989 §5.7 leaves it to us)
    dmarc_quarantine: bool = True  # p=quarantine: mark as spam (at least add_header)
    hard_reject_symbols: tuple[str, ...] = DEFAULT_HARD_REJECT
    on_temperror: TemperrorHandling = TemperrorHandling.ACCEPT
    temperror_symbols: tuple[str, ...] = DEFAULT_TEMPERROR_SYMBOLS
    spam_header_prefix: str = "X-Spam"

    def score_of(self, name: str, suggested: float) -> float:
        """The configured score of a symbol, else the table's, else what the check suggests."""
        if name in FIXED_SCORES:
            return FIXED_SCORES[name]
        return self.scores.get(name, DEFAULT_SCORES.get(name, suggested))

    def threshold_of(self, action: Action) -> float | None:
        return {
            Action.GREYLIST: self.greylist_threshold,
            Action.ADD_HEADER: self.add_header_threshold,
            Action.SOFT_REJECT: self.soft_reject_threshold,
            Action.REJECT: self.reject_threshold,
        }.get(action)


_THRESHOLD_KEYS = ("greylist", "add_header", "soft_reject", "reject")


def policy_config_from_mapping(data: Mapping[str, Any], source: str = "<config>") -> PolicyConfig:
    """Build a PolicyConfig from the `[policy]` table of a configuration (already parsed).

    Keys: `scores` (table name = number), `thresholds` (greylist, add_header, soft_reject,
    reject: a number, or false to disable), `dmarc_reject`, `dmarc_quarantine`,
    `hard_reject` (list of symbol names), `on_temperror` ("accept" or "tempfail"),
    `temperror_symbols` (list), `spam_header_prefix`.
    """
    known = {
        "scores",
        "thresholds",
        "dmarc_reject",
        "dmarc_quarantine",
        "hard_reject",
        "on_temperror",
        "temperror_symbols",
        "spam_header_prefix",
    }
    for key in data:
        if key not in known:
            raise ConfigError(source, f"policy.{key}", f"unknown key (known: {sorted(known)})")
    config = PolicyConfig()
    scores = dict(DEFAULT_SCORES)
    for name, value in _table(data, "scores", source).items():
        key = f"policy.scores.{name}"
        if not name.isascii() or not name.replace("_", "").isalnum() or name != name.upper():
            raise ConfigError(source, key, "symbol names are upper-case letters, digits and _")
        number = _number(value, source, key)
        if name in FIXED_SCORES and number != FIXED_SCORES[name]:
            raise ConfigError(
                source, key, "p=none must never change handling (RFC 9989 §5.4): keep it 0"
            )
        scores[name] = number
    config = replace(config, scores=scores)
    thresholds = _table(data, "thresholds", source)
    values: dict[str, float | None] = {}
    for name, value in thresholds.items():
        key = f"policy.thresholds.{name}"
        if name not in _THRESHOLD_KEYS:
            raise ConfigError(source, key, f"unknown action (known: {sorted(_THRESHOLD_KEYS)})")
        values[name] = None if value is False else _number(value, source, key)
    config = replace(
        config,
        greylist_threshold=values.get("greylist", config.greylist_threshold),
        add_header_threshold=values.get("add_header", config.add_header_threshold),
        soft_reject_threshold=values.get("soft_reject", config.soft_reject_threshold),
        reject_threshold=values.get("reject", config.reject_threshold),
    )
    _check_threshold_order(config, source)
    for flag in ("dmarc_reject", "dmarc_quarantine"):
        if flag in data and not isinstance(data[flag], bool):
            raise ConfigError(source, f"policy.{flag}", "expected true or false")
    config = replace(
        config,
        dmarc_reject=data.get("dmarc_reject", config.dmarc_reject),
        dmarc_quarantine=data.get("dmarc_quarantine", config.dmarc_quarantine),
    )
    if "hard_reject" in data:
        config = replace(
            config, hard_reject_symbols=_names(data["hard_reject"], source, "policy.hard_reject")
        )
    if "temperror_symbols" in data:
        symbols = _names(data["temperror_symbols"], source, "policy.temperror_symbols")
        config = replace(config, temperror_symbols=symbols)
    if "on_temperror" in data:
        try:
            config = replace(config, on_temperror=TemperrorHandling(data["on_temperror"]))
        except ValueError:
            raise ConfigError(
                source, "policy.on_temperror", 'expected "accept" or "tempfail"'
            ) from None
    if "spam_header_prefix" in data:
        prefix = data["spam_header_prefix"]
        if not isinstance(prefix, str) or not prefix or not _is_field_name(prefix):
            raise ConfigError(source, "policy.spam_header_prefix", "expected a header name")
        config = replace(config, spam_header_prefix=prefix)
    return config


def load_policy_config(path: str | Path) -> PolicyConfig:
    """The `[policy]` table of a TOML file (ConfigError naming file, key and reason)."""
    source = str(path)
    try:
        with open(path, "rb") as stream:
            data = tomllib.load(stream)
    except OSError as exc:
        raise ConfigError(source, "-", f"cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "-", f"not valid TOML: {exc}") from None
    policy = data.get("policy", {})
    if not isinstance(policy, dict):
        raise ConfigError(source, "policy", "expected a table")
    return policy_config_from_mapping(policy, source)


def _table(data: Mapping[str, Any], key: str, source: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(source, f"policy.{key}", "expected a table")
    return value


def _number(value: object, source: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(source, key, f"expected a number, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(source, key, "expected a finite number")
    return float(value)


def _names(value: object, source: str, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(source, key, "expected a list of symbol names")
    return tuple(value)


def _is_field_name(name: str) -> bool:
    """RFC 5322 §3.6.8: printable US-ASCII except colon."""
    return all(33 <= ord(c) <= 126 and c != ":" for c in name)


def _check_threshold_order(config: PolicyConfig, source: str) -> None:
    """Milder actions need lower thresholds, or a score would skip past them."""
    previous: tuple[str, float] | None = None
    for action in (Action.GREYLIST, Action.ADD_HEADER, Action.SOFT_REJECT, Action.REJECT):
        value = config.threshold_of(action)
        if value is None:
            continue
        if previous is not None and value < previous[1]:
            raise ConfigError(
                source,
                f"policy.thresholds.{action.value}",
                f"{value:g} is below the {previous[0]} threshold {previous[1]:g}",
            )
        previous = (action.value, value)
