#!/usr/bin/env bash
# Install the Debian packages ringfence needs, only those that are missing.
# Idempotent and quick when everything is present.
set -euo pipefail

need=(build-essential cmake pkg-config clang libclang-rt-14-dev
      libssl-dev openssl softhsm2 opensc libsqlite3-dev sqlite3
      libhttp-parser-dev libjansson-dev libcmocka-dev gnutls-bin curl
      libcurl4-openssl-dev
      python3 python3-jwt python3-cryptography bc iproute2 jq)
if [ "${1:-}" = "--bench" ]; then
	need+=(golang-cfssl nginx wrk hyperfine libevent-dev) # libevent: bench/custody.sh builds the commit before the split
fi

missing=()
for p in "${need[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
