#!/bin/sh
# A real Prometheus server scrapes `rre serve-metrics` and answers, through
# its HTTP API, the number of events the queue holds.
#   prometheus_scrape_test.sh RRE_TOOL PYTHON
set -eu
rre=$1
py=$2
dir=$(mktemp -d "${TMPDIR:-/tmp}/rre-prom-XXXXXX")
spid=""
ppid=""
cleanup() {
    [ -n "$spid" ] && kill "$spid" 2>/dev/null || true
    [ -n "$ppid" ] && kill "$ppid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM
fail() {
    echo "prometheus_scrape_test: $*" >&2
    for f in "$dir"/serve.err "$dir"/prometheus.log; do
        [ -f "$f" ] && { echo "--- $f" >&2; tail -20 "$f" >&2; }
    done
    exit 1
}
free_port() {
    "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

for i in 1 2 3; do
    "$rre" --db "$dir/events.db" publish ELO_UPDATED --payload "{\"n\":$i}" >/dev/null 2>&1 ||
        fail "publishing event $i"
done
mport=$(free_port)
"$rre" --db "$dir/events.db" serve-metrics --metrics-listen "127.0.0.1:$mport" \
    2>"$dir/serve.err" &
spid=$!
pport=$(free_port)
cat >"$dir/prometheus.yml" <<CONF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: rre
    static_configs:
      - targets: ['127.0.0.1:$mport']
CONF
prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/tsdb" \
    --web.listen-address="127.0.0.1:$pport" >"$dir/prometheus.log" 2>&1 &
ppid=$!

# Up to 90 s for the server to start, scrape and answer.
got=""
i=0
while [ $i -lt 180 ]; do
    got=$("$py" - "$pport" <<'PY' 2>/dev/null || true
import json, sys, urllib.request
url = "http://127.0.0.1:%s/api/v1/query?query=rre_queue_events" % sys.argv[1]
with urllib.request.urlopen(url, timeout=2) as r:
    res = json.load(r)["data"]["result"]
print(res[0]["value"][1] if res else "")
PY
)
    [ "$got" = "3" ] && break
    kill -0 "$ppid" 2>/dev/null || fail "prometheus exited"
    kill -0 "$spid" 2>/dev/null || fail "rre serve-metrics exited"
    i=$((i + 1))
    sleep 0.5
done
[ "$got" = "3" ] || fail "prometheus did not report rre_queue_events 3 (last answer: '$got')"

# The endpoint stops cleanly on SIGTERM.
kill "$spid"
status=0
wait "$spid" || status=$?
spid=""
[ "$status" -eq 0 ] || fail "rre serve-metrics exited $status after SIGTERM"
echo "prometheus_scrape_test: prometheus read rre_queue_events = 3"
