#!/usr/bin/env bash
# ThreadSanitizer only sees synchronisation in code it instrumented. Debian's libcaf_core is
# not instrumented, so every message hand-off between actors looks like a race to it. This
# builds Debian's own CAF 0.17.6 source package with -fsanitize=thread into
# build/caf-tsan/prefix, which the tsan preset links against. Run once (about 10 minutes on
# 2 cores); later runs return at once.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD/build/caf-tsan
if [[ -f $root/prefix/lib/libcaf_core.so ]]; then exit 0; fi
mkdir -p "$root/apt/lists/partial" "$root/apt/parts" "$root/dl"
cat > "$root/apt/parts/debian-src.sources" <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
apt_opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$root/apt/parts"
          -o "Dir::State::Lists=$root/apt/lists")
apt-get "${apt_opts[@]}" update -q
# apt verifies what it fetches against the signed Sources index. Only the upstream tarball is
# needed (Debian's packaging tarball is not, and is sometimes missing from the mirror).
(cd "$root/dl" && apt-get "${apt_opts[@]}" source --download-only actor-framework) || true
orig=$root/dl/actor-framework_0.17.6.orig.tar.gz
[[ -f $orig ]] || { echo "caf-tsan: could not fetch $orig" >&2; exit 1; }
want=$(grep -A3 '^Checksums-Sha256:' "$root"/dl/actor-framework_0.17.6-*.dsc | grep 'orig.tar.gz' | awk '{print $1}')
have=$(sha256sum "$orig" | awk '{print $1}')
[[ -n $want && $want == "$have" ]] || { echo "caf-tsan: checksum mismatch for $orig" >&2; exit 1; }
if [[ ! -f $root/src/CMakeLists.txt ]]; then
  mkdir -p "$root/src"
  tar xzf "$orig" -C "$root/src" --strip-components=1
fi
cmake -S "$root/src" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS="-fsanitize=thread" -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=thread" \
  -DCAF_NO_IO=yes -DCAF_NO_EXAMPLES=yes -DCAF_NO_UNIT_TESTS=yes -DCAF_NO_OPENSSL=yes -DCAF_NO_TOOLS=yes \
  -DCAF_NO_PYTHON=yes -DCAF_NO_OPENCL=yes -DCAF_NO_SUMMARY=yes \
  -DCMAKE_INSTALL_PREFIX="$root/prefix" >/dev/null
cmake --build "$root/build" --target install
# kvactor uses CAF's core only (its transport is its own), so libcaf_io is not built.
