"""Fail on REJECTED: the command for CI (`make verdict`).

    dvc repro && python -m pipeline.verdict        # exit 1 with the reasons if REJECTED

`dvc repro` (and `dvc exp run`) succeed on a REJECTED model, on purpose: the experiment is
kept and `dvc exp show` lists its verdict and failing gates, while the register stage moves
nothing. This command re-derives the verdict exactly as the register stage does
(pipeline.audit.rederive: the evidence must hold together, and the verdict must hold under the
committed policy) and exits 0 only for a model that may become champion: VALIDATED, judged with
no policy override. Exit 1: REJECTED or overridden, with the reasons. Exit 2: the evidence is
missing, stale or edited. It reads params.yaml and the workspace's outputs; it writes nothing
and never contacts the registry.
"""

from __future__ import annotations

import sys

from pipeline.audit.rederive import check_judged, decide, read_governance, scan_uploads
from pipeline.runtime.hashing import file_sha256
from pipeline.runtime.paths import MODEL
from pipeline.runtime.runner import DVC_FLAG, Context, main

PARAMS = ("data", "split", "model", "mitigation", "metrics", "governance", "privacy", "registry",
          "seed")
PARAMS_FILE = True


def run(ctx: Context) -> None:
    model_sha = file_sha256(ctx.require(MODEL, "train"))
    gov = read_governance(ctx)
    check_judged(ctx, gov, model_sha)
    scan_uploads(ctx, gov)
    d = decide(ctx, gov)
    if d.eligible:
        print(f"VALIDATED: model {model_sha[:12]}… may become champion")
        return
    print(f"{d.verdict}" + (f" (policy overridden: {', '.join(d.overrides)})"
                            if d.overrides else ""), file=sys.stderr)
    for reason in d.reasons if d.verdict == "REJECTED" else []:
        print(f"  - {reason}", file=sys.stderr)
    if d.failed:
        print(f"  failing gates: {', '.join(d.failed)}", file=sys.stderr)
    raise SystemExit(1)


if __name__ == "__main__":
    if len(sys.argv) == 1:  # the workspace as `dvc repro` left it
        sys.argv.append(DVC_FLAG)
    main("verdict", PARAMS, (), run)
