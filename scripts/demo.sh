#!/usr/bin/env bash
# Builds the project and runs the main job. Extra arguments go to `rre demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf 'demo.sh: %s\n' "$*" >&2; }
say "checking the Debian packages it needs (installing any that are missing)..."
scripts/install-deps.sh
say "configuring the build in build/..."
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
say "building (a minute or two the first time)..."
if ! cmake --build build -j "$(nproc 2>/dev/null || echo 2)" >build/demo-build.log 2>&1; then
    tail -n 40 build/demo-build.log >&2
    say "the build failed; the whole log is in build/demo-build.log"
    exit 1
fi
say "running: build/rre demo $*"
rre=build/rre
if "$rre" --help | grep -q '^  demo '; then
    exec "$rre" demo "$@"
fi
# A short tour of what exists so far.
set -x
"$rre" --version
"$rre" catalog --category training_pipeline
"$rre" catalog training_complete
"$rre" config-key parse hex8_2p
"$rre" config-key make square19 4
"$rre" validate TRAINING_COMPLETED --payload '{"config":"hex8_2p","board_type":"hex8","num_players":2,"model_path":"/models/hex8_2p.pth","epochs":50,"loss":0.0423,"samples_trained":85000}'
"$rre" validate TRAINING_COMPLETED --payload '{"config_key":"hex8_2p","epochs":"fifty"}' || true
