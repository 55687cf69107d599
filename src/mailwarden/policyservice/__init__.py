"""mailwarden.policyservice: the Postfix SMTPD access policy service (`mailwarden policy`).

    checks = PolicyChecks(build(settings, resolver, greylist=True), settings.policy_service)
    async with PolicyServer(checks, ("127.0.0.1", 10040)) as server: ...

protocol.py reads Postfix's attribute blocks from a hostile peer and writes answers;
checks.py translates a request into the pipeline's checks (greylisting, SPF, DNS lists, rate
limits) and the answer into an access(5) action; server.py listens and keeps connections.
Not to be confused with mailwarden.policy, the scoring policy every front end shares.
"""

from .checks import DUNNO, Answer, PolicyChecks
from .protocol import (
    MALFORMED,
    Limits,
    PolicyRequest,
    ProtocolError,
    format_answer,
    parse_block,
    read_request,
)
from .server import PolicyServer

__all__ = [
    "DUNNO",
    "MALFORMED",
    "Answer",
    "Limits",
    "PolicyChecks",
    "PolicyRequest",
    "PolicyServer",
    "ProtocolError",
    "format_answer",
    "parse_block",
    "read_request",
]
