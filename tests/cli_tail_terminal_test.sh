#!/bin/sh
# `rre tail --format text` in a real terminal (tmux): the type coloured by
# category, the payload shortened to the terminal's width; no colour with
# NO_COLOR set, and none into a pipe, where lines are whole.
#   cli_tail_terminal_test.sh RRE_TOOL
set -eu
rre=$1
dir=$(mktemp -d "${TMPDIR:-/tmp}/rre-tail-XXXXXX")
base="rre-tail-test-$$"
runs=0
cleanup() {
    for n in 1 2; do tmux -L "$base-$n" kill-server 2>/dev/null || true; done
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM
fail() {
    echo "cli_tail_terminal_test: $*" >&2
    cat "$dir/pane" >&2 2>/dev/null || true
    exit 1
}
db="$dir/events.db"
long=$(printf '%0300d' 0)
"$rre" --db "$db" publish ELO_UPDATED --payload "{\"config_key\":\"hex8_2p\",\"pad\":\"$long\"}" \
    >/dev/null 2>&1

# Runs tail in an 80-column pane ($1: extra environment) and keeps what the
# pane shows, escape sequences included, in $dir/pane. Each run has a tmux
# server of its own: a new client can reach a server that is still going
# away after kill-server, and fail with "server exited unexpectedly".
run_tail() {
    runs=$((runs + 1))
    sock="$base-$runs"
    rm -f "$dir/done"
    tmux -L "$sock" -f /dev/null new-session -d -s tail -x 80 -y 10 \
        "env $1 TERM=xterm-256color '$rre' --db '$db' tail --format text; touch '$dir/done'; sleep 30"
    i=0
    while [ ! -e "$dir/done" ] && [ $i -lt 100 ]; do
        i=$((i + 1))
        sleep 0.2
    done
    [ -e "$dir/done" ] || fail "rre tail did not end"
    tmux -L "$sock" capture-pane -e -p -t tail > "$dir/pane"
}

run_tail "-u NO_COLOR"
grep -q "$(printf '\033')\[" "$dir/pane" || fail "no colour on a terminal"
grep -q "ELO_UPDATED" "$dir/pane" || fail "the event is not shown"
grep -q "…" "$dir/pane" || fail "the payload was not shortened"
# One line only: shortened to the width, not wrapped onto a second one.
[ "$(grep -c . "$dir/pane")" -eq 1 ] || fail "the line was wrapped, not shortened"

run_tail "NO_COLOR=1"
if grep -q "$(printf '\033')\[" "$dir/pane"; then fail "colour with NO_COLOR set"; fi
grep -q "ELO_UPDATED" "$dir/pane" || fail "the event is not shown with NO_COLOR"

# Into a pipe: no colour, the whole payload.
out=$(env -u NO_COLOR "$rre" --db "$db" tail --format text | cat)
case "$out" in *"$(printf '\033')"*) fail "colour into a pipe" ;; esac
case "$out" in *"$long"*) ;; *) fail "the payload was shortened into a pipe" ;; esac
echo "cli_tail_terminal_test: ok"
