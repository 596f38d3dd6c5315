"""governance: gate the model on fairness, performance and privacy; write the verdict and the
model card / bias audit.

    dvc repro governance
    python -m pipeline.governance governance.use_confidence_bound=true

Always writes a verdict (VALIDATED or REJECTED) and exits 0 when its inputs are readable; the
register stage enforces it. Missing or corrupt inputs are an error: no verdict is written, so
nothing can be registered.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from pipeline.audit import gates, model_card
from pipeline.privacy import Scrubber
from pipeline.runtime.errors import DataError
from pipeline.runtime.hashing import file_sha256
from pipeline.runtime.outputs import dumps
from pipeline.runtime.paths import (
    FAIRNESS_REPORT,
    GOVERNANCE_METRICS,
    GOVERNANCE_REPORT,
    INGEST_REPORT,
    MODEL,
    MODEL_CARD_HTML,
    MODEL_CARD_MD,
    PERFORMANCE,
    SCORES,
    SPLIT_REPORT,
    TRAIN_REPORT,
    UPLOADED_REPORTS,
)
from pipeline.runtime.runner import Context, main
from pipeline.tracking import lineage

log = logging.getLogger("pipeline.governance")

OUTS = (GOVERNANCE_REPORT, GOVERNANCE_METRICS, MODEL_CARD_MD, MODEL_CARD_HTML)
PARAMS = lineage.JUDGED_SECTIONS
# It hashes every judged section (identity.params_hash, which register checks), so any change
# to them must rerun it: dvc.yaml tracks params.yaml as one file dep rather than copying each
# section into dvc.lock (they were most of its 2,000 lines, and DVC re-parses it every run).
PARAMS_FILE = True
SCHEMA_VERSION = 1


def _read_json(ctx: Context, rel: str, producer: str) -> dict:
    path = ctx.require(rel, producer, " (no verdict written)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: corrupt JSON ({e}); no verdict written") from None


def _scores(ctx: Context, split: str, attributes: list[str]):
    """The judged split's rows of `reports/scores.parquet`: score and sensitive attributes."""
    import pandas as pd

    path = ctx.require(SCORES, "metrics", " (no verdict written)")
    try:
        frame = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise DataError(f"{path}: unreadable ({type(e).__name__}); rerun the metrics stage "
                        "(no verdict written)") from None
    absent = [c for c in ("split", "score", *attributes) if c not in frame.columns]
    if absent:
        raise DataError(f"{path}: column(s) {absent} missing; rerun the metrics stage "
                        "(no verdict written)")
    return frame[frame["split"] == split].reset_index(drop=True)


def _rows(path: str, findings) -> list[dict]:
    """Findings as (file, entity, line, column) — never the value."""
    return [{"path": path, "entity": f.entity, "line": f.line, "column": f.column}
            for f in findings]


def _scan(ctx: Context, scrubber, generated: dict[str, str]) -> dict:
    details, skipped = [], {}
    for rel in UPLOADED_REPORTS:
        path = ctx.input(rel)
        if not path.exists():
            raise DataError(f"{path}: missing; it would be uploaded, so it must be scanned")
        found = scrubber.scan_file(path)
        details += _rows(rel, found)
        if getattr(found, "skipped", False):
            skipped[rel] = found.skipped_reason
    for name, text in generated.items():
        details += _rows(name, scrubber.scan_text(text, name))
    details.sort(key=lambda d: (d["path"], d["line"], d["column"], d["entity"]))
    return {"files_scanned": len(UPLOADED_REPORTS) + len(generated),
            "entities": scrubber.entities, "findings": len(details), "details": details,
            "skipped": skipped}


def run(ctx: Context) -> None:
    p = ctx.params
    gov_cfg = p.governance
    model_path = ctx.require(MODEL, "train", " (no verdict written)")  # the first input
    performance = _read_json(ctx, PERFORMANCE, "metrics")
    fairness = _read_json(ctx, FAIRNESS_REPORT, "metrics")
    results, split_fair = _judge(gov_cfg, fairness, performance)
    sections = lineage.judged_sections(p)
    scrubber = Scrubber.from_config(p.privacy)
    identity = _identity(ctx, fairness, model_path)
    # Every file the register stage uploads, as judged and scanned here: register refuses a
    # file whose bytes changed since (an edited metric, a planted string).
    judged = {rel: file_sha256(ctx.input(rel)) for rel in UPLOADED_REPORTS}
    base = {
        "schema_version": SCHEMA_VERSION, "enforcement": gov_cfg.enforcement,
        "hard_blocks": [g.id for g in results if g.hard and not g.passed],
        "warnings": [g.reason for g in results if g.advisory and not g.passed],
        "split": gov_cfg.split, "use_confidence_bound": gov_cfg.use_confidence_bound,
        "identity": identity, "judged_sha256": judged,
        "config": scrubber.scrub_obj(sections),  # what params_hash covers, for register
        "gates": [g.as_dict() for g in results],
    }
    card_ctx = {
        "spec": p.data, "card": gov_cfg.model_card, "threshold": p.metrics.threshold,
        "ingest": _read_json(ctx, INGEST_REPORT, "ingest"),
        "split": _read_json(ctx, SPLIT_REPORT, "split"),
        "train": _read_json(ctx, TRAIN_REPORT, "train"), "performance": performance,
        "performance_ci": fairness["performance_ci"], "fairness": split_fair,
        "split_name": gov_cfg.split, "privacy": p.privacy,
        "scores": _scores(ctx, gov_cfg.split, list(p.data.sensitive)),
    }

    # The documents are scanned before anything is written, and they also show the scan's
    # outcome. So: render them with the verdict before the scan (no findings), scan that text,
    # then render them once more with the final verdict. The two renders differ only in the
    # verdict, reasons and scan summary: fixed words, gate ids, entity names and counts, which
    # carry no data, so the scanned text stands for the written one (and register scans the
    # written files again before uploading them).
    def documents(findings: int, scan: dict) -> tuple[dict, str, str]:
        verdict, reasons = gates.verdict(results, findings)
        report = {**base, "verdict": verdict, "reasons": reasons, "privacy_scan": scan}
        return (report, *model_card.build({**card_ctx, "governance": report}))

    draft, md, html = documents(0, {"files_scanned": 0, "entities": scrubber.entities,
                                    "findings": 0, "details": [], "skipped": {}})
    scan = _scan(ctx, scrubber, {GOVERNANCE_REPORT: dumps(draft), MODEL_CARD_MD: md,
                                 MODEL_CARD_HTML: html, "params": dumps(sections)})
    final, md, html = documents(scan["findings"], scan)
    _write(ctx, final, md, html, results)


def _judge(gov_cfg, fairness: dict, performance: dict):
    try:
        return gates.judge(gov_cfg, fairness, performance), fairness["splits"][gov_cfg.split]
    except (KeyError, TypeError) as e:
        raise DataError(f"metrics files lack expected entry {e}; rerun the metrics stage "
                        "(no verdict written)") from None


def _identity(ctx: Context, fairness: dict, model_path: Path) -> dict:
    # No git commit here: this report is a DVC output, and a commit id would make it (and
    # dvc.lock) differ in every clone and after every commit. The commit is recorded where it
    # is true, on the registry version (register's `git_commit` tag).
    spec = ctx.params.data
    return {
        "model": fairness.get("model"), "mitigation": fairness.get("mitigation"),
        "dataset": spec.name,
        "data_hash": lineage.data_hash(Path.cwd(), spec.source.dir, spec.source.files),
        "params_hash": lineage.params_hash(lineage.judged_sections(ctx.params)),
        "model_sha256": file_sha256(model_path),
    }


def _write(ctx: Context, final: dict, md: str, html: str, results) -> None:
    judged = final["judged_sha256"]
    for rel, text in ((MODEL_CARD_MD, md), (MODEL_CARD_HTML, html)):
        path = ctx.outputs.path(rel)
        path.write_text(text, encoding="utf-8")
        judged[rel] = file_sha256(path)  # the card renders no hash of itself
    ctx.outputs.write_json(GOVERNANCE_REPORT, final)
    verdict, scan = final["verdict"], final["privacy_scan"]
    headline = {g.id.replace("fairness:", "").replace("performance:", ""): g.value
                for g in results}
    ctx.outputs.write_json(GOVERNANCE_METRICS, {
        "verdict": verdict, "validated": int(verdict == "VALIDATED"),
        "failed": sum(not g.passed and not g.advisory for g in results),
        # Names, for `dvc exp show`: a reviewer compares rejected experiments by what failed.
        "failed_gates": ",".join(g.short for g in results if not g.passed and not g.advisory),
        "warnings": sum(not g.passed and g.advisory for g in results),
        "pii_findings": scan["findings"], "gates": headline,
    })
    if verdict == "VALIDATED":
        log.info("VALIDATED (%d gates, %d advisory warnings)", len(results),
                 len(final["warnings"]))
    else:
        log.warning("REJECTED: %s", "; ".join(final["reasons"]))


if __name__ == "__main__":
    main("governance", PARAMS, OUTS, run)
