"""Serving throughput with the prediction audit log on vs off (cache misses, c=16 and c=64).

    python bench/audit_overhead.py [--model PATH] [--workers 2] [--duration 6] [--rounds 2]

Same run, same payloads, same load generator as bench/serve_load.py: the server is started
with `serve.audit.enabled=false` and `true` in turn (alternating, `--rounds` times, so drift
in the machine's load hits both alike) and every request is a record it has not seen. Prints
requests/s and p99 per row, the on/off ratio of the medians per concurrency (goal >= 0.95),
and how many records each audited run logged (warm-up requests included), chain verified.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))
from serve_load import measure, our_server, payload_files, prepare_model  # noqa: E402

from pipeline.audit.chain import verify  # noqa: E402

CONCURRENCY = (16, 64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--duration", type=float, default=6.0)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    rps: dict[tuple[str, int], list[float]] = {}
    p99: dict[tuple[str, int], list[float]] = {}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="audit-bench-") as tmp:
        work = Path(tmp)
        model = prepare_model(args.model, work)
        payloads = payload_files(model, work)["ours"]
        for _ in range(args.rounds):
            for audit in ("off", "on"):
                server, _ = our_server(model, args.workers, work,
                                       [f"serve.audit.enabled={audit == 'on'}"])
                server.name = f"audit-{audit}"
                results: list = []
                try:
                    measure(server, "/predict", [("miss", payloads, c) for c in CONCURRENCY],
                            args.duration, results, [64], {"timeout": 10.0})
                finally:
                    server.stop()
                for r in results:
                    if "concurrency" in r:
                        rps.setdefault((audit, r["concurrency"]), []).append(r["ok_rps"])
                        p99.setdefault((audit, r["concurrency"]), []).append(r["p99_ms"])
                if audit == "on":
                    logs = sorted(work.glob(f"audit-{server.port}"))
                    report = verify(logs[0])
                    print(f"  audit log: {report.kinds.get('prediction', 0)} prediction "
                          f"records, chain {'OK' if report.ok else report.problems[0]}")
    print(f"\nload average before: {load_before}, after: {os.getloadavg()}")
    out = {}
    for c in CONCURRENCY:
        off, on = statistics.median(rps[("off", c)]), statistics.median(rps[("on", c)])
        out[c] = round(on / off, 3)
        print(f"c={c}: audit off {off:.1f} req/s (p99 {statistics.median(p99[('off', c)]):.0f} ms),"
              f" on {on:.1f} req/s (p99 {statistics.median(p99[('on', c)]):.0f} ms): "
              f"ratio {on / off:.3f} (goal >= 0.95)")
    print(json.dumps({"ratio_on_off": out}))


if __name__ == "__main__":
    main()
