"""mailwarden.submission: the message submission server (`mailwarden submit`, RFC 6409).

Users authenticate (AUTH PLAIN or LOGIN inside TLS: STARTTLS on 587, implicit TLS on 465, RFC
8314) against the user store (argon2id hashes), may send only as their own addresses (the
envelope sender and every From mailbox), within rate limits, watched for signs of a stolen
account; each accepted message is DKIM-signed for its From domain and relayed to the
smarthost before the client gets 250. The SMTP server is the gateway's, with its
`Authenticator` seam; this package only adds what submission needs.
"""

from .alerts import Alert, Alerts
from .auth import SubmissionAuth
from .bruteforce import Block, BruteForceGuard, client_network
from .checks import SubmissionChecks
from .compromise import CompromiseDetector, CompromiseSign
from .limits import RateLimiter, Reservation
from .relay import AccountingRelay, SmarthostEvents
from .senders import SenderError, canonical_entry, may_send_as
from .server import Submission, counter_store, listener_settings, user_store
from .users import Passwords, User, UserError, UserStore, canonical_name

__all__ = [
    "AccountingRelay",
    "Alert",
    "Alerts",
    "Block",
    "BruteForceGuard",
    "CompromiseDetector",
    "CompromiseSign",
    "Passwords",
    "RateLimiter",
    "Reservation",
    "SenderError",
    "SmarthostEvents",
    "Submission",
    "SubmissionAuth",
    "SubmissionChecks",
    "User",
    "UserError",
    "UserStore",
    "canonical_entry",
    "canonical_name",
    "client_network",
    "counter_store",
    "listener_settings",
    "may_send_as",
    "user_store",
]
