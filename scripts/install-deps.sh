#!/usr/bin/env bash
# Installs the Debian packages geo's build needs, if any are missing:
# the toolchain (cmake, ninja, g++, clang) and the test/library dependencies
# (nlohmann-json3-dev, catch2). Extra package names may be passed as arguments
# (run-benchmarks.sh adds libbenchmark-dev).
set -euo pipefail

packages=(nlohmann-json3-dev catch2 "$@")
command -v cmake >/dev/null 2>&1 || packages+=(cmake)
command -v g++ >/dev/null 2>&1 || packages+=(g++)
command -v clang++ >/dev/null 2>&1 || packages+=(clang)
command -v ninja >/dev/null 2>&1 || packages+=(ninja-build)

missing=()
for package in "${packages[@]}"; do
    if ! dpkg -s "$package" 2>/dev/null | grep -q '^Status: install ok installed'; then
        missing+=("$package")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

echo "install-deps: installing missing Debian packages: ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo_cmd=(sudo)
    else
        echo "install-deps: not root and no sudo; install: ${missing[*]}" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
for attempt in 1 2 3; do
    if "${sudo_cmd[@]}" apt-get update &&
        "${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${missing[@]}"; then
        exit 0
    fi
    echo "install-deps: apt-get failed (attempt $attempt of 3)" >&2
    sleep $((attempt * 5))
done
exit 1
