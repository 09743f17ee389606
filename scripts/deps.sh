#!/usr/bin/env bash
# Installs kvactor's build dependencies from Debian 12's packages (run as root). Only calls
# apt-get when something is missing, so repeated runs cost nothing; apt's output goes to a log
# that is shown only when it fails.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh
packages=(build-essential cmake ninja-build ccache git pkg-config
          libcaf-dev libboost-dev libcereal-dev libssl-dev
          libgtest-dev googletest libbenchmark-dev iproute2 procps
          clang-16 libfuzzer-16-dev libclang-rt-16-dev  # the fuzz preset
          clang-format-14 clang-tidy-14                 # scripts/check-format.sh, tidy.sh
          python3-dev pybind11-dev python3-numpy        # the Python binding (python/)
          python3-pytest python3-torch python3-sklearn) # its tests and the Python example
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  say "packages: all ${#packages[@]} present"
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  die "missing packages (${missing[*]}); installing them needs root: sudo bash scripts/deps.sh"
fi
export DEBIAN_FRONTEND=noninteractive
mkdir -p build
say "packages: apt-get update (to install ${#missing[@]}: ${missing[*]})"
quietly build/apt-update.log apt-get update
say "packages: apt-get install (a few minutes on a fresh machine)"
quietly build/apt-install.log apt-get install -y --no-install-recommends "${missing[@]}"
say "packages: installed"
