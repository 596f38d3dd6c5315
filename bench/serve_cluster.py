"""Serving through haproxy with two instances vs one instance directly (cache misses).

    python bench/serve_cluster.py [--model PATH] [--duration 4]

One instance (`serve.workers_per_device=1`) measured directly, then two such instances behind
haproxy with `deploy/haproxy.cfg` (what tests/test_stack.py runs), at concurrency 16 and 64,
with bench/serve_load.py's client (a separate process, keep-alive connections, unique
records). Prints req/s and p99 per row, and the ratio two-behind-haproxy / one-direct. On a
2-core machine the client, haproxy and both instances share the same cores: the ratio says
what the balancer costs more than what a second machine would add.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from _common import ROOT
from serve_load import (
    _env,
    free_port,
    our_server,
    payload_files,
    prepare_model,
    run_client,
    stop_process_group,
)

CONCURRENCY = (16, 64)


def haproxy(s1: int, s2: int, work: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = _env(GOVPIPE_LB_PORT=str(port), GOVPIPE_S1_PORT=str(s1), GOVPIPE_S2_PORT=str(s2))
    log = (work / "haproxy.log").open("wb")
    proc = subprocess.Popen([shutil.which("haproxy") or "haproxy", "-db", "-f",
                             str(ROOT / "deploy" / "haproxy.cfg")], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    return proc, port


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path)
    ap.add_argument("--duration", type=float, default=4.0)
    args = ap.parse_args()
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory(prefix="serve-cluster-bench-") as tmp:
        work = Path(tmp)
        model = prepare_model(args.model, work)
        payloads = payload_files(model, work)["ours"]
        offset = 64

        def load(label: str, port: int) -> None:
            nonlocal offset
            for c in CONCURRENCY:
                r = run_client(f"http://127.0.0.1:{port}/predict", payloads, c,
                               args.duration, "miss", offset)
                offset += r["requests"] + 2 * c  # every request a record not seen before
                rows.append((label, c, r))

        one, _ = our_server(model, 1, work, [])
        try:
            one.wait_ready()
            load("1 instance, direct", one.port)
        finally:
            one.stop()
        a, _ = our_server(model, 1, work, [], tag="-a")
        b, _ = our_server(model, 1, work, [], tag="-b")
        lb = None
        try:
            a.wait_ready()
            b.wait_ready()
            lb, port = haproxy(a.port, b.port, work)
            time.sleep(2)  # haproxy's health checks: rise 2 x 500 ms
            load("2 instances, haproxy", port)
        finally:
            if lb is not None:
                stop_process_group(lb, grace=5)
            a.stop()
            b.stop()
    print("| setup | concurrency | req/s | p50 ms | p99 ms | statuses |")
    print("|---|---|---|---|---|---|")
    for name, c, r in rows:
        print(f"| {name} | {c} | {r['rps']:.0f} | {r['p50_ms']} | {r['p99_ms']} | {r['codes']} |")
    for c in CONCURRENCY:
        direct = next(r for n, cc, r in rows if cc == c and n.startswith("1"))
        lb_ = next(r for n, cc, r in rows if cc == c and n.startswith("2"))
        print(f"c={c}: 2 behind haproxy / 1 direct = {lb_['rps'] / direct['rps']:.2f}x req/s, "
              f"p99 {lb_['p99_ms']} vs {direct['p99_ms']} ms")
    print(f"load average before/after: {load_before} / {os.getloadavg()}; cpus {os.cpu_count()}")


if __name__ == "__main__":
    main()
