#!/bin/sh
# cpack makes a .deb of the build: its control fields, that it holds the
# tool, libraries, headers, pkg-config and CMake files, man page and bash
# completion under /usr, and that the tool runs from the unpacked tree.
# Usage: deb_package_test.sh BUILD_DIR
set -eu
build=$1
out=$(mktemp -d "${TMPDIR:-/tmp}/rre-deb-XXXXXX")
trap 'rm -rf "$out"' EXIT
cpack -G DEB --config "$build/CPackConfig.cmake" -B "$out" >"$out/cpack.log" 2>&1 ||
    { cat "$out/cpack.log"; exit 1; }
deb=$(find "$out" -maxdepth 1 -name 'ringrift-events_*.deb' | head -n 1)
[ -n "$deb" ] || { echo "cpack made no ringrift-events_*.deb"; cat "$out/cpack.log"; exit 1; }

field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = ringrift-events ] || { echo "Package: $(field Package)"; exit 1; }
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
[ "$(field Version)" = "$version" ] || { echo "Version: $(field Version), not $version"; exit 1; }
for dep in libjansson4 libsqlite3-0 libssl3 libnats; do
    field Depends | grep -q "$dep" || { echo "Depends lacks $dep: $(field Depends)"; exit 1; }
done

dpkg-deb -c "$deb" | awk '{print $6}' >"$out/files"
for f in ./usr/bin/rre ./usr/lib/librre.so ./usr/lib/librre.a ./usr/include/rre/rre.h \
    ./usr/lib/pkgconfig/rre.pc ./usr/lib/cmake/rre/rreConfig.cmake \
    ./usr/share/man/man1/rre.1 ./usr/share/bash-completion/completions/rre; do
    grep -qx "$f" "$out/files" || { echo "the package lacks $f"; cat "$out/files"; exit 1; }
done

dpkg-deb -x "$deb" "$out/root"
LD_LIBRARY_PATH="$out/root/usr/lib" "$out/root/usr/bin/rre" --version >"$out/version"
grep -q "$version" "$out/version" || { echo "rre --version: $(cat "$out/version")"; exit 1; }
LD_LIBRARY_PATH="$out/root/usr/lib" "$out/root/usr/bin/rre" catalog TRAINING_COMPLETED >/dev/null
echo "$(basename "$deb"): $(wc -l <"$out/files") entries, the tool runs from it"
