#!/usr/bin/env bash
# Builds the examples and runs the quickstart: what a new user sees first.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-deps.sh

build_dir="build/demo"
cmake -S . -B "$build_dir" \
    -DCMAKE_BUILD_TYPE=Release \
    -DGEO_BUILD_TESTS=OFF \
    -DGEO_BUILD_EXAMPLES=ON \
    -DGEO_BUILD_BENCHMARKS=OFF \
    -DGEO_INSTALL=OFF
cmake --build "$build_dir" --target quickstart -j "$(nproc 2>/dev/null || echo 2)"

echo
echo "== examples/quickstart.cpp"
"$build_dir/examples/quickstart"
