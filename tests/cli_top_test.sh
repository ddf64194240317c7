#!/bin/sh
# `rre top` in a real terminal (tmux): it shows the queue, follows the
# terminal's size, quits on q and on Ctrl-C with status 0, leaving the
# terminal's normal screen as it was; without a terminal it prints plain
# snapshots.
#   cli_top_test.sh RRE_TOOL
set -eu
rre=$1
dir=$(mktemp -d "${TMPDIR:-/tmp}/rre-top-XXXXXX")
base="rre-top-test-$$"
starts=0
sock="$base-0"
cleanup() {
    for n in 0 1 2; do tmux -L "$base-$n" kill-server 2>/dev/null || true; done
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM
fail() {
    echo "cli_top_test: $*" >&2
    tmux -L "$sock" capture-pane -p -t top 2>/dev/null >&2 || true
    exit 1
}
db="$dir/events.db"
"$rre" --db "$db" publish ELO_UPDATED --payload '{"n":0}' >/dev/null 2>&1
"$rre" --db "$db" tail --subscriber watcher >/dev/null

# Waits up to 20 s until the pane shows $1 (a fixed string).
wait_for() {
    i=0
    while [ $i -lt 100 ]; do
        if tmux -L "$sock" capture-pane -p -t top 2>/dev/null | grep -qF -- "$1"; then
            return 0
        fi
        i=$((i + 1))
        sleep 0.2
    done
    fail "the pane never showed '$1'"
}
# Waits up to 20 s for rre top to end; prints its exit status (the pane's
# shell writes it to a file: tmux cannot always say how a pane ended).
wait_dead() {
    i=0
    while [ $i -lt 100 ]; do
        if [ -s "$dir/status" ]; then
            cat "$dir/status"
            return 0
        fi
        i=$((i + 1))
        sleep 0.2
    done
    fail "rre top did not end"
}

start_top() {
    # A tmux server per start: right after kill-server a new client can
    # reach the server still going away ("server exited unexpectedly").
    tmux -L "$sock" kill-server 2>/dev/null || true
    starts=$((starts + 1))
    sock="$base-$starts"
    rm -f "$dir/status"
    # The shell traps SIGINT (Ctrl-C reaches the whole foreground group) so
    # that it lives to record rre's status; rre gets the default action.
    tmux -L "$sock" -f /dev/null new-session -d -s top -x 100 -y 30 \
        "trap true INT; TERM=xterm-256color '$rre' --db '$db' top --interval 0.5; echo \$? > '$dir/status'"
    tmux -L "$sock" set-option -t top remain-on-exit on >/dev/null
    wait_for "busiest types"
}

# The view, with events published while it runs.
start_top
wait_for "watcher"
for i in 1 2 3 4 5; do
    "$rre" --db "$db" publish ELO_UPDATED --payload "{\"n\":$i}" >/dev/null 2>&1
    "$rre" --db "$db" publish TRAINING_STARTED --payload "{\"config_key\":\"hex8_2p\",\"n\":$i}" \
        >/dev/null 2>&1
done
wait_for "TRAINING_STARTED"
wait_for "evaluation"
wait_for "q: quit"

# A smaller terminal: every line fits it.
tmux -L "$sock" resize-window -t top -x 50 -y 20
sleep 1.5
wide=$(tmux -L "$sock" capture-pane -p -t top | awk '{ if (length($0) > 50) print }' | wc -l)
[ "$wide" -eq 0 ] || fail "lines wider than the 50-column terminal"
tmux -L "$sock" capture-pane -p -t top | grep -qF "rre top" || fail "no header after resizing"

# q quits with status 0, and the normal screen comes back as it was.
tmux -L "$sock" send-keys -t top q
status=$(wait_dead)
[ "$status" = 0 ] || fail "rre top exited $status after q"
if tmux -L "$sock" capture-pane -p -t top | grep -qF "busiest types"; then
    fail "the view stayed on the screen after quitting"
fi

# Ctrl-C quits the same way.
start_top
tmux -L "$sock" send-keys -t top C-c
status=$(wait_dead)
[ "$status" = 0 ] || fail "rre top exited $status after Ctrl-C"

# Without a terminal: plain snapshots.
out=$("$rre" --db "$db" top --once)
echo "$out" | grep -qF "busiest types" || fail "no snapshot without a terminal"
echo "$out" | grep -qF "watcher" || fail "the subscriber is missing from the snapshot"
if printf '%s' "$out" | LC_ALL=C grep -q "$(printf '\033')"; then
    fail "escape sequences in the plain output"
fi
status=0
"$rre" --db "$db" top --interval 0 >/dev/null 2>&1 || status=$?
[ "$status" -eq 2 ] || fail "--interval 0 gave status $status, not 2"
echo "cli_top_test: passed"
