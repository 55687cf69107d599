"""Imports run one way: foundation, protocols, policy and settings, the pipeline, tools built
on it, then front ends. A module importing upward (a protocol importing the policy, the policy
importing a protocol, the pipeline importing the gateway) fails here, and so does dnspython
imported anywhere but inside mailwarden.dns.

Every top-level package or module of src/mailwarden must be placed in a tier below, so a new
one cannot slip in unclassified.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "mailwarden"

FOUNDATION = {
    "metrics",
    "runtime",
    "schema",
    "reply",
    "symbols",
    "address",
    "body",
    "message",
    "author",
    "dns",
    "ipinput",
    "sqlitefile",
    "jsontext",
    "frozen",
}
PROTOCOLS = {
    "spf",
    "dkim",
    "dmarc",
    "arc",
    "authres",
    "iprev",
    "helo",
    "dnsbl",
    "greylist",
    "received",
    "spfbuild",
    "audit",
    "ratelimit",
    "signing",
    "srs",
    # DMARC reports (RFC 9990/9991): the report store, building, sending and reading
    "reports",
    # the store of recent transactions the dashboard reads
    "transactions",
}
# What each tier may import besides itself (modules of the same package always may).
ALLOWED: dict[str, set[str]] = {
    **{name: FOUNDATION for name in FOUNDATION},
    **{name: FOUNDATION | PROTOCOLS for name in PROTOCOLS},
    # the policy is pure decision logic: symbols in, a verdict out, no protocol's types
    "policy": {"schema", "reply", "symbols", "author", "frozen"},
    "settings": FOUNDATION | PROTOCOLS | {"policy"},
    "pipeline": FOUNDATION | PROTOCOLS | {"policy", "settings"},
    # our own mail's DKIM keys and signer: read the settings, built on the dkim package
    "signing": FOUNDATION | PROTOCOLS | {"settings"},
    "analyze": FOUNDATION | PROTOCOLS | {"policy", "settings", "pipeline"},
    "gateway": FOUNDATION | PROTOCOLS | {"policy", "settings", "pipeline"},
    # the gateway package is also the SMTP server the submission front end runs (one state
    # machine): the one front end another may build on
    "submission": FOUNDATION | PROTOCOLS | {"policy", "settings", "pipeline", "gateway"},
    # Postfix lookup services (socketmap, tcp_table): the SRS maps of `mailwarden srs`
    "socketmap": FOUNDATION | PROTOCOLS | {"settings"},
    # the HTTP API: a front end over the pipeline; extensions (dashboard) plug into it
    "http": FOUNDATION | PROTOCOLS | {"policy", "settings", "pipeline"},
    # the dashboard: pages and JSON plugged into the HTTP API through its extension point
    "dashboard": FOUNDATION | PROTOCOLS | {"policy", "settings", "pipeline", "http"},
    # the Postfix policy service (mailwarden.policyservice): a front end on the pipeline
    "policyservice": FOUNDATION | PROTOCOLS | {"policy", "settings", "pipeline"},
    # the milter protocol and front end
    "milter": FOUNDATION | PROTOCOLS | {"policy", "settings", "pipeline"},
    "cli": FOUNDATION
    | PROTOCOLS
    | {
        "policy",
        "settings",
        "pipeline",
        "analyze",
        "gateway",
        "submission",
        "socketmap",
        "http",
        "dashboard",
        "policyservice",
        "milter",
    },
    "__init__": set(),
    "__main__": {"cli"},
}
# Foundation modules that build on one another, never in a cycle.
FOUNDATION_ORDER = [
    "frozen",
    "metrics",
    "runtime",
    "schema",
    "reply",
    "symbols",
    "dns",
    "ipinput",
    "address",
    "body",
    "message",
    "author",
    "sqlitefile",
    "jsontext",
]


def _top(path: Path) -> str:
    relative = path.relative_to(SRC)
    return relative.parts[0].removesuffix(".py")


def _imported(path: Path, root: Path = SRC) -> set[str]:
    """Absolute module names `path` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ["mailwarden", *path.relative_to(root).with_suffix("").parts[:-1]]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                names.add(".".join([*base, node.module] if node.module else base))
            elif node.module:
                names.add(node.module)
    return names


def _sources() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_every_package_is_in_a_tier() -> None:
    tops = {_top(path) for path in _sources()}
    assert tops <= set(ALLOWED), f"place these in a tier: {sorted(tops - set(ALLOWED))}"


def test_imports_run_one_way() -> None:
    offenders: list[str] = []
    for path in _sources():
        top = _top(path)
        for name in _imported(path):
            parts = name.split(".")
            if parts[0] != "mailwarden" or len(parts) < 2:
                continue
            target = parts[1]
            upward_in_foundation = (
                top in FOUNDATION
                and target in FOUNDATION
                and FOUNDATION_ORDER.index(target) > FOUNDATION_ORDER.index(top)
            )
            if (target == top or target in ALLOWED[top]) and not upward_in_foundation:
                continue
            offenders.append(f"{path.relative_to(SRC)} imports {name}")
    assert offenders == []


def test_dnspython_only_inside_the_dns_package() -> None:
    offenders = [
        str(path.relative_to(SRC))
        for path in _sources()
        if _top(path) != "dns"
        and any(name == "dns" or name.startswith("dns.") for name in _imported(path))
    ]
    assert offenders == []


def test_the_rule_itself_catches_an_upward_import(tmp_path: Path) -> None:
    """The checker is not vacuous: a protocol importing the pipeline is found."""
    (tmp_path / "spf").mkdir()
    fake = tmp_path / "spf" / "probe.py"
    fake.write_text(
        "from mailwarden.pipeline import build\nimport dns.resolver\nfrom ..x import y\n"
    )
    imported = _imported(fake, tmp_path)
    assert "mailwarden.pipeline" in imported
    assert "pipeline" not in ALLOWED["spf"]
    assert "dns.resolver" in imported
    assert "mailwarden.x" in imported
