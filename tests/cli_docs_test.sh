#!/bin/sh
# The man page renders without a warning and names every command that
# `rre --help` lists; the bash completion offers every command and the
# options of a command.
#   cli_docs_test.sh RRE_TOOL SOURCE_DIR
set -eu
rre=$1
src=$2
fail() {
    echo "cli_docs_test: $*" >&2
    exit 1
}
warnings=$(LC_ALL=C.UTF-8 groff -man -ww -z "$src/docs/man/rre.1" 2>&1 || true)
[ -z "$warnings" ] || fail "groff warns about the man page: $warnings"
commands=$("$rre" --help | awk '/^commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 }')
[ -n "$commands" ] || fail "no commands in rre --help"
for c in $commands; do
    grep -q "^\.B[IR]* \"*$(echo "$c" | sed 's/-/\\\\-/g')" "$src/docs/man/rre.1" ||
        grep -q "^\.BI* \"$(echo "$c" | sed 's/-/\\\\-/g')" "$src/docs/man/rre.1" ||
        grep -q "^\.B $(echo "$c" | sed 's/-/\\\\-/g')\$" "$src/docs/man/rre.1" ||
        fail "the man page has no entry for '$c'"
done
for c in $commands; do
    got=$(bash -c ". '$src/contrib/bash-completion/rre'; COMP_WORDS=(rre '$c'); COMP_CWORD=1; _rre; echo \"\${COMPREPLY[*]}\"")
    echo " $got " | grep -q " $c " || fail "the completion does not offer '$c' (got '$got')"
done
got=$(bash -c ". '$src/contrib/bash-completion/rre'; COMP_WORDS=(rre --db x tail --fo); COMP_CWORD=4; _rre; echo \"\${COMPREPLY[*]}\"")
[ "$got" = "--follow --format" ] || fail "tail --fo completes to '$got'"
echo "cli_docs_test: passed"
