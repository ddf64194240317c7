#!/usr/bin/env bash
# Hunts flaky tests: runs the suite many times in a row under ASan+UBSan and
# under TSan while the machine is kept busy, and stops at the first failure.
#   scripts/repeat-tests.sh [COUNT] [CTEST_REGEX]
# COUNT: runs per build (default 20); CTEST_REGEX: only the tests it matches
# (default: all). The load is one busy loop per core, so timing-dependent
# tests see a machine as loaded as a shared CI runner can be.
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-20}"
regex="${2:-}"

hogs=()
stop_hogs() { for p in "${hogs[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap stop_hogs EXIT
for _ in $(seq "$(nproc 2>/dev/null || echo 2)"); do
    sh -c 'while :; do :; done' &
    hogs+=("$!")
done

scripts/install-deps.sh
for sanitize in address,undefined thread; do
    dir=build-asan
    [ "$sanitize" = thread ] && dir=build-tsan
    echo "== $sanitize: building in $dir"
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRRE_WERROR=ON \
        -DRRE_SANITIZE="$sanitize" >/dev/null
    cmake --build "$dir" -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
    echo "== $sanitize: up to $count runs${regex:+ of tests matching '$regex'}"
    export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
    ctest --test-dir "$dir" --output-on-failure -j2 --repeat "until-fail:$count" \
        ${regex:+-R "$regex"}
done
echo "== no test failed"
