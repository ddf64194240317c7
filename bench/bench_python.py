#!/usr/bin/env python3
"""Figures of the Python package (printed, never asserted):

- in-process publish to one subscriber (a plain handler) with an 11-field
  payload, through Router(link=False) and through a router linked to a
  queue (each event also appended durably);
- delivery from another process: events appended by a child process in
  batches of 500 (Queue.publish_batch) reaching a Python handler of a
  router linked to the queue, events/s end to end;
- resident memory of a fresh interpreter after `import rre` and
  get_router();
- the reference in the same run: a bare json.dumps of the same payload.

Usage: PYTHONPATH=python python3 bench/bench_python.py [EVENTS]
(RRE_LIBRARY may name the library; the default is the build tree's.)
"""

import json
import os
import subprocess
import sys
import tempfile
import time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 50000
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))

import rre  # noqa: E402
from rre.event_router import Router  # noqa: E402


def payload(i):
    return {
        "config_key": "hex8_2p", "board_type": "hex8", "num_players": 2,
        "model_path": "/models/canonical_hex8_2p.pth", "epochs": 50, "final_loss": 0.0423,
        "samples_trained": 85000, "job_id": "job-%d" % i, "duration_seconds": 1832.5,
        "early_stopped": True, "seq": i,
    }


def rate(fn, n):
    t0 = time.perf_counter()
    fn(n)
    return n / (time.perf_counter() - t0)


def bare_dumps(n):
    for i in range(n):
        json.dumps(payload(i))


def in_process(router):
    got = [0]

    def handler(ev):
        got[0] += 1

    router.subscribe("TRAINING_COMPLETED", handler)

    def run(n):
        for i in range(n):
            router.publish_sync("TRAINING_COMPLETED", payload(i), source="bench")
    return run, got


def rss_after_import():
    code = ("import sys; sys.path.insert(0, %r); import rre; from rre.event_router import "
            "get_router; get_router(db_path=%r); import re; "
            "print(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read()).group(1))"
            % (os.path.join(os.path.dirname(HERE), "python"),
               os.path.join(tempfile.mkdtemp(), "m.db")))
    kib = int(subprocess.check_output([sys.executable, "-c", code]).strip())
    base = int(subprocess.check_output([sys.executable, "-c",
        "import re; print(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read()).group(1))"]).strip())
    return kib, base


def main():
    print("load average at start:", open("/proc/loadavg").read().strip())
    ref = rate(bare_dumps, N)
    print("reference: bare json.dumps of the same 11-field payload: %.0f per second" % ref)
    with Router(link=False, history_size=0) as r:
        run, got = in_process(r)
        x = rate(run, N)
    print("in-process publish to one subscriber (Router(link=False)): %.0f events/s "
          "(goal: at least 100000; %.2f of bare json.dumps); delivered %d" % (x, x / ref, got[0]))
    d = tempfile.mkdtemp()
    with Router(db_path=os.path.join(d, "q.db"), history_size=0) as r:
        run, got = in_process(r)
        y = rate(run, N // 5)
    print("in-process publish, router linked to the queue (each event also appended "
          "durably, one commit each): %.0f events/s" % y)
    db = os.path.join(d, "x.db")
    got = [0]
    marks = []

    def count(ev):
        got[0] += 1
        if got[0] == 1 or got[0] == m:
            marks.append(time.perf_counter())

    with Router(db_path=db, history_size=0) as r:
        m = N // 5
        r.subscribe("TRAINING_COMPLETED", count)
        child = ("import sys; sys.path.insert(0, %r); import rre; q = rre.Queue(%r); "
                 "[q.publish_batch([('TRAINING_COMPLETED', {'seq': i + k, 'config_key': "
                 "'hex8_2p'}) for k in range(500)]) for i in range(0, %d, 500)]"
                 % (os.path.join(os.path.dirname(HERE), "python"), db, m))
        t0 = time.perf_counter()
        subprocess.check_call([sys.executable, "-c", child])
        deadline = time.monotonic() + 120
        while got[0] < m and time.monotonic() < deadline:
            time.sleep(0.005)
        dt = time.perf_counter() - t0
    span = marks[-1] - marks[0] if len(marks) == 2 and marks[-1] > marks[0] else dt
    print("from another process (it appends %d events in batches of 500) to a Python handler: "
          "%d delivered, %.0f events/s from the first to the last (%.2f s with the child's "
          "start)" % (m, got[0], got[0] / span, dt))
    kib, base = rss_after_import()
    print("resident memory after import rre and get_router(): %.1f MiB (a bare interpreter: "
          "%.1f MiB; goal: under 25 MiB)" % (kib / 1024, base / 1024))
    print("load average at end:", open("/proc/loadavg").read().strip())


if __name__ == "__main__":
    main()
