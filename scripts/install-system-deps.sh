#!/usr/bin/env bash
# System packages airpack's tests, demo and benchmarks use, all from Debian: the CNCF distribution registry,
# the real consumers of a bundle (skopeo, containerd's ctr, zstd, tar, openssl), ISO tools for site media,
# htpasswd for the auth tests and tinyproxy (a real forward proxy) for the proxy tests. Idempotent; run as root
# (or through sudo).
set -euo pipefail
packages=(docker-registry skopeo zstd openssl containerd xorriso genisoimage apache2-utils tinyproxy tar coreutils time)
missing=()
for p in "${packages[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
