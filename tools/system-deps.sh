#!/usr/bin/env bash
# Installs the Debian packages the tests need when their programs are missing.
# Each line: the program the tests run, then the Debian package that provides it.
set -euo pipefail
needed=(
    "redis-server redis-server"
)
missing=()
for entry in "${needed[@]}"; do
    read -r program package <<<"$entry"
    command -v "$program" >/dev/null 2>&1 || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "system-deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
    echo "system-deps: run as root or install these Debian packages: ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts packaged services; the tests start their own instances on private ports.
