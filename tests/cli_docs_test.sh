#!/bin/sh
# The man page (made by help2man from rre --help-all) renders without a
# warning, has the usual sections, a section for every command that
# `rre --help` lists and every option that each command's help names; the
# bash completion offers every command and the options of a command.
#   cli_docs_test.sh RRE_TOOL SOURCE_DIR MAN_PAGE
set -eu
rre=$1
src=$2
page=$3
fail() {
    echo "cli_docs_test: $*" >&2
    exit 1
}
[ -f "$page" ] || fail "no man page at $page (is help2man installed?)"
warnings=$(LC_ALL=C.UTF-8 groff -man -ww -z "$page" 2>&1 || true)
[ -z "$warnings" ] || fail "groff warns about the man page: $warnings"
if command -v man >/dev/null 2>&1; then
    text=$(MANWIDTH=100 LC_ALL=C.UTF-8 man -l "$page" 2>&1) || fail "man -l failed: $text"
else
    text=$(LC_ALL=C.UTF-8 groff -man -Tutf8 -rLL=100n "$page" 2>&1)
fi
text=$(printf '%s\n' "$text" | sed 's/.\x08//g') # no overstrike (bold) in what is compared
for section in NAME SYNOPSIS DESCRIPTION ENVIRONMENT EXAMPLES "SEE ALSO"; do
    printf '%s\n' "$text" | grep -q "^$section" || fail "the man page has no $section section"
done
commands=$("$rre" --help | awk '/^commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 }')
[ -n "$commands" ] || fail "no commands in rre --help"
# Every command has its section, and every option its help names is in the
# page: the page is made from the help texts, so they cannot drift apart.
source=$(sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' "$page")
for c in $commands; do
    grep -q "^\.SS \"rre $c:\"" "$page" || fail "the man page has no section for '$c'"
    for opt in $("$rre" help "$c" | grep -o -- '--[a-z][a-z-]*' | sort -u); do
        printf '%s\n' "$source" | grep -q -- "$opt\\b" ||
            fail "'rre help $c' names $opt, the man page does not"
    done
done
for c in $commands; do
    got=$(bash -c ". '$src/contrib/bash-completion/rre'; COMP_WORDS=(rre '$c'); COMP_CWORD=1; _rre; echo \"\${COMPREPLY[*]}\"")
    echo " $got " | grep -q " $c " || fail "the completion does not offer '$c' (got '$got')"
done
got=$(bash -c ". '$src/contrib/bash-completion/rre'; COMP_WORDS=(rre --db x tail --fo); COMP_CWORD=4; _rre; echo \"\${COMPREPLY[*]}\"")
[ "$got" = "--follow --format" ] || fail "tail --fo completes to '$got'"
echo "cli_docs_test: passed"
