"""`python -m pipeline.audit verify DIR [--json] [--expect-last HASH]` (or `make audit-verify`).

Walks every stream of the prediction audit log in DIR across its rotated segments
(pipeline.audit.chain) and prints either `OK: N records ...` with the time range and the last
record's hash, or each broken link (file, line, what is wrong). Exit 0 when the chain holds,
1 when it is broken, 2 for a usage error (no such directory, no segments in it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pipeline.audit.chain import Problem, records, verify

USAGE = "usage: python -m pipeline.audit verify DIR [--json] [--expect-last HASH]"


def main(argv: list[str]) -> int:
    args = list(argv)
    as_json = "--json" in args
    args = [a for a in args if a != "--json"]
    expect = None
    if "--expect-last" in args:
        i = args.index("--expect-last")
        if i + 1 >= len(args):
            print(USAGE, file=sys.stderr)
            return 2
        expect = args[i + 1]
        del args[i:i + 2]
    if len(args) != 2 or args[0] != "verify":
        print(USAGE, file=sys.stderr)
        return 2
    directory = Path(args[1])
    if not directory.is_dir():
        print(f"error: {directory}: no such directory", file=sys.stderr)
        return 2
    report = verify(directory)
    if report.files == 0:
        print(f"error: {directory}: no audit log segments (*.NNNNNN.jsonl) in it", file=sys.stderr)
        return 2
    if expect is not None and report.ok and expect not in _hashes(report, directory):
        report.problems.append(Problem("-", 0, f"no record has the expected hash {expect}: "
                                       "the chain was rewritten or cut before it"))
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
    elif report.ok:
        d = report.as_dict()
        print(f"OK: {report.records} records in {report.files} file(s), {report.streams} "
              f"stream(s), {d['first']} .. {d['last']}; last hash {report.last_hash}")
        for s in report.open_streams:
            print(f"  stream {s} has no close record (still writing, or it stopped without "
                  "one: records it had not flushed are lost)")
    else:
        print(f"BROKEN: {len(report.problems)} problem(s) in {directory}")
        for p in report.problems:
            print(f"  {p}")
    return 0 if report.ok else 1


def _hashes(report, directory: Path) -> set[str]:
    return {r.get("hash") for r in records(directory)}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
