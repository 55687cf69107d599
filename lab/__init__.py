"""The mailwarden lab (`make lab`, issue 18): the whole journey of a message on real hosts.

Linux network namespaces joined by veth pairs to a bridge make the hosts (lab.netns, lab.topology):
a DNS server (nsd, logging every query over dnstap: lab.dnstap), a.example's MSA (`mailwarden
submit`) and MTA (Postfix: lab.postfix), b.example's MX (`mailwarden serve`) and mailbox
(Postfix), a mailing list (`mailwarden serve` and lab.listhost, which ARC-seals), a forwarder
(SRS), a zombie. lab.run builds them and runs the scenarios (lab.scenarios); lab.report tells
each journey as its ten steps, from what the hosts recorded.

`python -m lab` runs it; `python -m lab clean` removes what an interrupted run left (it needs
nothing but the standard library, so it works without the project's virtualenv).
"""

from pathlib import Path

DEFAULT_DIR = Path("/tmp/mailwarden-lab")
DEFAULT_PREFIX = "mwlab"
