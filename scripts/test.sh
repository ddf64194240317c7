#!/usr/bin/env bash
# Builds the project with warnings as errors and runs every test.
#   scripts/test.sh                        plain build (build/)
#   RRE_SANITIZE=address,undefined scripts/test.sh   ASan + UBSan (build-asan/)
#   RRE_SANITIZE=thread scripts/test.sh              TSan (build-tsan/)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

sanitize="${RRE_SANITIZE:-}"
case "$sanitize" in
    "") dir=build ;;
    thread) dir=build-tsan ;;
    *) dir=build-asan ;;
esac
jobs=$(nproc 2>/dev/null || echo 2)

cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRRE_WERROR=ON -DRRE_SANITIZE="$sanitize" >/dev/null
cmake --build "$dir" -j "$jobs"
# handle_abort=1: the stack of an abort is printed too (a test program aborts
# on a failed check or a crash, see tests/CMakeLists.txt).
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:handle_abort=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}"
ctest --test-dir "$dir" --output-on-failure -j "$jobs"
