#!/bin/sh
# Installs the build into a temporary prefix and builds an example the way
# another project would: with pkg-config and the installed header only.
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
echo "installed, built and ran an example against $prefix"
