#!/usr/bin/env bash
# Installs kvactor's build dependencies from Debian 12's packages (run as root). Only calls
# apt-get when something is missing, so repeated runs cost nothing.
set -euo pipefail
packages=(build-essential cmake ninja-build ccache git pkg-config
          libcaf-dev libboost-dev libcereal-dev libssl-dev
          libgtest-dev googletest libbenchmark-dev iproute2 procps)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "kvactor: installing ${missing[*]}" >&2
  if [[ $(id -u) -ne 0 ]]; then
    echo "kvactor: these packages are missing and installing them needs root" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
