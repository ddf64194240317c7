#!/bin/sh
# The C API reference: Doxygen runs over the public headers with warnings as
# errors (an undocumented public symbol, a broken command: the test fails),
# and every function the headers export has its man(3) page.
#   api_doc_test.sh DOXYGEN DOXYFILE OUT_DIR SOURCE_DIR
set -eu
doxygen=$1
doxyfile=$2
out=$3
src=$4
rm -rf "$out"
mkdir -p "$out"
if ! "$doxygen" "$doxyfile" >"$out/doxygen.log" 2>&1; then
    echo "doxygen failed (warnings are errors):"
    cat "$out/warnings.txt" 2>/dev/null || true
    cat "$out/doxygen.log"
    exit 1
fi
if [ -s "$out/warnings.txt" ]; then
    echo "doxygen warned:"
    cat "$out/warnings.txt"
    exit 1
fi
[ -f "$out/html/index.html" ] || { echo "no HTML index"; exit 1; }
missing=0
for f in $(grep -ho '^RRE_API [^(]*(' "$src"/include/rre/*.h | sed 's/.*[ *]\([a-z_0-9]*\)($/\1/' | sort -u); do
    if [ ! -f "$out/man/man3/$f.3" ]; then
        echo "no man page for $f"
        missing=$((missing + 1))
    fi
done
[ "$missing" -eq 0 ] || exit 1
echo "api_doc_test: $(ls "$out/man/man3" | wc -l) man pages, no warning"
