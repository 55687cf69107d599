#!/usr/bin/env bash
# Installs the Debian packages the tests need when their programs are missing.
# Each line: the program the tests run, then the Debian package that provides it.
set -euo pipefail
needed=(
    "redis-server redis-server"
    "postfix postfix"
    "swaks swaks"
    "nsd nsd"
    "ip iproute2"
    "postsrsd postsrsd"
    "pg_ctlcluster postgresql"
    "chromium chromium"
    "systemd-analyze systemd"
    "rspamd rspamd"  # a peer of benchmarks/verdict_bench.py (test-only, never a runtime need)
)
missing=()
for entry in "${needed[@]}"; do
    read -r program package <<<"$entry"
    command -v "$program" >/dev/null 2>&1 || [ -x "/usr/sbin/$program" ] || missing+=("$package")
done
# swaks speaks STARTTLS through this Perl module (a recommended package, not a dependency).
perl -MNet::SSLeay -e1 >/dev/null 2>&1 || missing+=("libnet-ssleay-perl")
[ ${#missing[@]} -eq 0 ] && exit 0
echo "system-deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
    echo "system-deps: run as root or install these Debian packages: ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Postfix asks how to configure itself: not at all (the tests write their own main.cf).
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts packaged services; the tests start their own instances on private ports.
