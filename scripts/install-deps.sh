#!/usr/bin/env bash
# Installs the Debian packages k2serve needs to build, test and serve. Idempotent and quiet
# when everything is already present: only missing packages reach apt-get.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git clang libclang-rt-14-dev
  libzmq3-dev cppzmq-dev libnuma-dev libjemalloc-dev
  libboost-dev libboost-system-dev
  libspdlog-dev libfmt-dev nlohmann-json3-dev libmsgpack-cxx-dev
  libpcre2-dev libxxhash-dev libstb-dev libjpeg62-turbo-dev libwebp-dev libyaml-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  nodejs npm python3 python3-jsonschema curl
  libavformat-dev libavcodec-dev libavutil-dev libswscale-dev libssl-dev
  libgloo-dev iproute2
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# The machine image may carry its own node/npm outside dpkg; accept those.
filtered=()
for p in "${missing[@]:-}"; do
  [ -z "$p" ] && continue
  case "$p" in
    nodejs) command -v node >/dev/null 2>&1 && continue ;;
    npm) command -v npm >/dev/null 2>&1 && continue ;;
    python3) command -v python3 >/dev/null 2>&1 && continue ;;
    python3-jsonschema) python3 -c 'import jsonschema' >/dev/null 2>&1 && continue ;;
  esac
  filtered+=("$p")
done
[ ${#filtered[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${filtered[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${filtered[@]}" >/dev/null
