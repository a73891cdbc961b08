#!/usr/bin/env bash
# Installs the Debian packages tsengine and its test suite use, on a fresh Debian machine (as root).
#   busybox-static   test images are built from its static busybox (no downloads)
#   iptables         NAT and firewall rules of the bridge network driver
#   docker-registry  a real registry server on 127.0.0.1 for the registry tests
#   apache2-utils    htpasswd, for the registry's basic-auth tests
#   openssl          certificates for the registry's TLS tests
#   iproute2         ip netns/link/addr for networking and its tests
#   e2fsprogs        lsattr/chattr, with which the tests check the graph drivers' ext4 flags
#   util-linux-extra fincore, with which the tests check which writes went past the page cache
set -euo pipefail
packages=(busybox-static iptables docker-registry apache2-utils openssl iproute2 e2fsprogs util-linux-extra)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's docker-registry package starts a registry service on :5000; the tests run their own.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now docker-registry >/dev/null 2>&1 || true; fi
echo "debian packages ready: ${packages[*]}"
