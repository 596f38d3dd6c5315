"""The verdict, derived again from first principles (register stage, `pipeline.verdict`).

Nothing governance wrote is trusted as such: the report must have judged exactly this model,
these params and these files (byte for byte), its verdict must follow from the judged metrics
and gates, and the verdict is derived once more under the policy committed in conf/
(pipeline.audit.policy). Tampering is an error (Refused, exit 2); a REJECTED model is an
outcome (Decision), which the register stage records without registering it under `block`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.audit import gates, policy
from pipeline.config.governance import GovernanceSpec
from pipeline.privacy import Scrubber
from pipeline.runtime.errors import PipelineError
from pipeline.runtime.hashing import file_sha256
from pipeline.runtime.paths import (
    FAIRNESS_REPORT,
    GOVERNANCE_REPORT,
    MODEL,
    MODEL_CARD_HTML,
    MODEL_CARD_MD,
    PERFORMANCE,
    UPLOADED_REPORTS,
)
from pipeline.tracking import lineage

log = logging.getLogger("pipeline.audit.rederive")

JUDGED_FILES = (*UPLOADED_REPORTS, MODEL_CARD_MD, MODEL_CARD_HTML)  # hashed by governance
UPLOADS = (*JUDGED_FILES, GOVERNANCE_REPORT)


class Refused(PipelineError):
    """The evidence does not hold together: the message says why and what to do."""


@dataclass(frozen=True)
class Decision:
    verdict: str  # VALIDATED only if VALIDATED as judged and under the committed policy
    register: bool  # False: REJECTED under `block` (or a hard block): recorded, not registered
    eligible: bool  # VALIDATED with no policy override: may become champion
    overrides: list[str]  # policy keys the judged config departs from
    gates: list[Any]  # GateResults under the committed policy
    failed: list[str]  # short names of the gates that failed (judged or committed policy)
    reasons: list[str]


def read_governance(ctx) -> dict:
    path = ctx.input(GOVERNANCE_REPORT)
    if not path.exists():
        raise Refused(f"{GOVERNANCE_REPORT} is missing: run the governance stage first "
                      "(`dvc repro governance`)")
    try:
        gov = json.loads(path.read_text(encoding="utf-8"))
        for key in ("verdict", "gates", "privacy_scan", "judged_sha256", "config"):
            gov[key]  # noqa: B018 - presence check
        gov["identity"]["model_sha256"], gov["identity"]["params_hash"]  # noqa: B018
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise Refused(f"{GOVERNANCE_REPORT} is unreadable ({type(e).__name__}: {e}); rerun "
                      "the governance stage") from None
    return gov


def check_judged(ctx, gov: dict, model_sha: str) -> None:
    """The report judged exactly this model, these params and these files."""
    stale = f"{GOVERNANCE_REPORT} is stale"
    if gov["identity"]["model_sha256"] != model_sha:
        raise Refused(f"{stale}: it judged model {gov['identity']['model_sha256'][:12]}…, but "
                      f"{MODEL} is {model_sha[:12]}…; rerun the governance stage")
    params_hash = lineage.params_hash(lineage.judged_sections(ctx.params))
    if gov["identity"]["params_hash"] != params_hash:
        changed = ", ".join(_changed(gov["config"], ctx))
        raise Refused(f"{stale}: it judged other params than this run's ({changed}); rerun "
                      "the governance stage (`dvc repro`)")
    hashes = gov["judged_sha256"]
    for rel in JUDGED_FILES:
        path = ctx.input(rel)
        if rel not in hashes:
            raise Refused(f"{stale}: it recorded no hash for {rel}, which would be uploaded")
        if not path.exists():
            raise Refused(f"{rel} is missing; rerun the pipeline")
        if file_sha256(path) != hashes[rel]:
            raise Refused(f"{stale}: {rel} changed since it was judged")


def _changed(judged: dict, ctx) -> list[str]:
    now = lineage.judged_sections(ctx.params)
    keys = [k for k in lineage.JUDGED_SECTIONS if judged.get(k) != now.get(k)]
    return keys or ["sections differ only in scrubbed values"]


def scan_uploads(ctx, gov: dict) -> None:
    """Its own privacy scan of everything that would be uploaded (governance's is not
    trusted). A finding is an error, not a REJECTED outcome: the experiment must not be kept
    either, since DVC would commit these files to its experiment refs in git."""

    scrubber = Scrubber.from_config(ctx.params.privacy)
    found = []
    for rel in UPLOADS:
        found += [f"{rel}:{f.line}:{f.column} {f.entity}"
                  for f in scrubber.scan_file(ctx.input(rel))]
    if found or gov["privacy_scan"].get("findings"):
        shown = "; ".join(found[:10]) or "see the governance report's privacy_scan"
        raise Refused(f"personal data in files to upload ({shown}); never registered")


def decide(ctx, gov: dict) -> Decision:
    p = ctx.params
    fairness = json.loads(ctx.input(FAIRNESS_REPORT).read_text(encoding="utf-8"))
    performance = json.loads(ctx.input(PERFORMANCE).read_text(encoding="utf-8"))
    findings = gov["privacy_scan"].get("findings", 0)
    judged = gates.judge(p.governance, fairness, performance)
    verdict, _ = gates.verdict(judged, findings)
    recorded = {g["id"]: g["passed"] for g in gov["gates"]}
    if verdict != gov["verdict"] or recorded != {g.id: g.passed for g in judged}:
        raise Refused(f"{GOVERNANCE_REPORT} says {gov['verdict']!r}, but its gates on the "
                      f"judged metrics give {verdict!r}: the report was edited; rerun the "
                      "governance stage")
    committed = policy.committed(Path.cwd(), p.data.name, p.registry.name)
    overrides = policy.overrides(policy.of(policy_view(p)), committed)
    under_policy = gates.judge(GovernanceSpec.model_validate(committed["governance"]),
                               fairness, performance)
    policy_verdict, reasons = gates.verdict(under_policy, findings)
    failed = sorted({g.short for g in (*judged, *under_policy)
                     if not g.passed and not g.advisory})
    hard = sorted({g.id for g in (*judged, *under_policy) if g.hard and not g.passed})
    final = "VALIDATED" if verdict == policy_verdict == "VALIDATED" else "REJECTED"
    register = True
    if final == "REJECTED":
        reasons = reasons or ["REJECTED under this run's overridden gates"]
        if hard:
            reasons = [f"hard block: {', '.join(hard)}", *reasons]
        register = p.governance.enforcement == "warn" and not hard
        log.warning("REJECTED (%s): %s", "registered unpromoted under governance.enforcement"
                    "=warn" if register else "not registered", "; ".join(reasons))
    if overrides:
        log.warning("judged under overridden policy (%s): registered as %s at most",
                    ", ".join(overrides), p.registry.challenger_alias)
    return Decision(final, register, final == "VALIDATED" and not overrides, overrides,
                    under_policy, failed, reasons)


def policy_view(p: Any) -> dict:
    return {"data": {"target": p.data.target.model_dump(mode="json"),
                     "sensitive": {k: v.model_dump(mode="json")
                                   for k, v in p.data.sensitive.items()}},
            "governance": p.governance.model_dump(mode="json"),
            "metrics": p.metrics.model_dump(mode="json"),
            "registry": p.registry.model_dump(mode="json")}
