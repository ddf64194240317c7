#!/bin/sh
# Installs the build into a temporary prefix and builds an example the way
# another project would: with pkg-config, then with CMake's find_package(rre),
# using only what was installed.
# Usage: install_test.sh BUILD_DIR SOURCE_DIR
set -eu
build=$1
src=$2
prefix=$(mktemp -d "${TMPDIR:-/tmp}/rre-install-XXXXXX")
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(find "$prefix" -name rre.pc -path '*pkgconfig*' -exec dirname {} \; | head -n 1)
[ -n "$libdir" ] || { echo "rre.pc was not installed"; exit 1; }
export PKG_CONFIG_PATH="$libdir"
[ -f "$prefix/include/rre/rre.h" ] || { echo "rre.h was not installed"; exit 1; }
cc -std=c11 -Wall -Wextra -Werror -o "$prefix/producer" "$src/examples/producer.c" \
    $(pkg-config --cflags --libs rre)
LD_LIBRARY_PATH="$(dirname "$libdir")" "$prefix/producer" >/dev/null
"$prefix/bin/rre" catalog TRAINING_COMPLETED --format json >/dev/null
echo "installed, built and ran an example with pkg-config against $prefix"

# find_package(rre): the shared and the static target, in a project of its own.
mkdir "$prefix/app" "$prefix/app-build"
cp "$src/examples/producer.c" "$prefix/app/"
cat >"$prefix/app/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.20)
project(rre_app LANGUAGES C)
find_package(rre 0.1 REQUIRED)
add_executable(producer producer.c)
target_link_libraries(producer PRIVATE rre::rre)
add_executable(producer_static producer.c)
target_link_libraries(producer_static PRIVATE rre::rre_static)
CMAKE
cmake -S "$prefix/app" -B "$prefix/app-build" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_C_FLAGS="-Wall -Wextra -Werror" >/dev/null
cmake --build "$prefix/app-build" >/dev/null
LD_LIBRARY_PATH="$(dirname "$libdir")" "$prefix/app-build/producer" >/dev/null
"$prefix/app-build/producer_static" >/dev/null
if ldd "$prefix/app-build/producer_static" | grep -q librre; then
    echo "producer_static links librre.so, not the static library"
    exit 1
fi
# A version the package does not offer is refused.
sed 's/find_package(rre 0.1/find_package(rre 1.0/' "$prefix/app/CMakeLists.txt" >"$prefix/app/v1"
mv "$prefix/app/v1" "$prefix/app/CMakeLists.txt"
if cmake -S "$prefix/app" -B "$prefix/app-build-v1" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null 2>&1; then
    echo "find_package(rre 1.0) accepted version 0.1"
    exit 1
fi
echo "built and ran an example with find_package(rre) (rre::rre and rre::rre_static)"
