#!/usr/bin/env bash
# Builds the project and runs the main job: the pipeline demo on the embedded
# SQLite queue. Extra arguments go to `rre demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
exec build/rre demo "$@"
