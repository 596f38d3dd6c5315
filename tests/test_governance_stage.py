"""The governance stage through its real entry point: verdicts, plug-ins, bad inputs, card."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, composed, stage

FNR = ("{name:fnr_diff,_target_:tests.fairness_plugins.false_negative_rate_difference}")


@pytest.fixture(scope="module")
def plugin_metrics(tmp_path_factory, built) -> Path:
    """A metrics run with a plug-in fairness metric added through config only."""
    out = tmp_path_factory.mktemp("metrics")
    proc = stage(ROOT, "metrics", f"+inputs={built}", f"metrics.extra_fairness_metrics=[{FNR}]",
                 "metrics.n_boot=50", f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr
    return out


def test_plugin_fairness_metric_is_gated_like_builtins(plugin_metrics, built, tmp_path):
    report = json.loads((plugin_metrics / "reports" / "fairness.json").read_text())
    value = report["splits"]["test"]["breakdowns"]["sex"]["metrics"]["fnr_diff"]["value"]
    assert value is not None
    for limit, expected in ((1.0, "VALIDATED"), (value / 2, "REJECTED")):
        run = tmp_path / f"gov-{expected}"
        proc = stage(built, "governance", f"+inputs={plugin_metrics}", "metrics.n_boot=50",
                     f"metrics.extra_fairness_metrics=[{FNR}]",
                     f"governance.fairness=[{{metric:fnr_diff,max:{limit},attributes:[sex]}}]",
                     f"hydra.run.dir={run}")
        assert proc.returncode == 0, proc.stderr
        gov = json.loads((run / "reports" / "governance.json").read_text())
        assert gov["verdict"] == expected
        [gate] = [g for g in gov["gates"] if g["metric"] == "fnr_diff"]
        assert gate["attribute"] == "sex" and gate["value"] == value


def test_plugin_pii_detector_rejects_what_it_finds(plugin_metrics, built, tmp_path):
    nino = "AB123456C"  # the format example used in UK guidance: synthetic
    proc = stage(built, "governance", f"+inputs={plugin_metrics}", "metrics.n_boot=50",
                 f"metrics.extra_fairness_metrics=[{FNR}]",
                 "privacy.plugins=[{_target_:tests.privacy_plugins.UkNinoDetector}]",
                 f"governance.model_card.owners='Data team, ref {nino}'",
                 f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    gov_text = (tmp_path / "reports" / "governance.json").read_text()
    gov = json.loads(gov_text)
    assert gov["verdict"] == "REJECTED"
    hits = gov["privacy_scan"]["details"]
    assert {h["entity"] for h in hits} == {"UK_NINO"}
    assert {h["path"] for h in hits} >= {"reports/model_card.md", "reports/model_card.html"}
    assert all(h["line"] >= 1 and h["column"] >= 1 for h in hits)
    assert nino not in gov_text and nino not in proc.stderr


def test_default_config_is_validated_with_a_complete_card(built, tmp_path):
    proc = stage(ROOT, "governance", f"+inputs={built}", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    gov = json.loads((tmp_path / "reports" / "governance.json").read_text())
    assert gov["verdict"] == "VALIDATED", gov["reasons"]
    assert gov["privacy_scan"]["findings"] == 0 and gov["privacy_scan"]["files_scanned"] >= 10
    model_sha = gov["identity"]["model_sha256"]
    import hashlib

    assert model_sha == hashlib.sha256((built / "artifacts" / "model.pkl").read_bytes()).hexdigest()
    md = (tmp_path / "reports" / "model_card.md").read_text()
    for heading in ("## Identity", "## Intended use and limitations", "## Data",
                    "## Performance", "## Bias audit", "## Governance gates",
                    "## Privacy scan"):
        assert heading in md
    assert model_sha in md and "impact ratio" in md and "EXCLUDED" in md  # small race groups
    html = (tmp_path / "reports" / "model_card.html").read_text()
    assert "<svg" in html  # chart embedded; nothing fetched from elsewhere:
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', html) and "<link" not in html


def test_missing_and_corrupt_inputs_never_validate(tmp_path, built):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(composed(), sort_keys=False))
    proc = stage(tmp_path, "governance", "--dvc")
    assert proc.returncode == 2
    assert "artifacts/model.pkl: not found; run the train stage" in proc.stderr
    assert not (tmp_path / "reports" / "governance.json").exists()

    bad = tmp_path / "bad"
    (bad / "reports").mkdir(parents=True)
    (bad / "reports" / "fairness.json").write_text('{"splits": {"test": ')
    proc = stage(built, "governance", f"+inputs={bad}", f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2 and "corrupt JSON" in proc.stderr
    assert not (tmp_path / "run" / "reports").exists()

    (bad / "reports" / "fairness.json").write_text('{"splits": {}}')
    proc = stage(built, "governance", f"+inputs={bad}", f"hydra.run.dir={tmp_path / 'run2'}")
    assert proc.returncode == 2 and "lack expected entry" in proc.stderr


def test_hash_policy_without_salt_is_a_config_error(tmp_path):
    raw = composed()
    raw["data"]["columns"]["fnlwgt"]["pii"] = "hash"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    proc = stage(tmp_path, "ingest", "--dvc", GOVPIPE_PII_SALT="")
    assert proc.returncode == 2
    assert "data.columns.fnlwgt.pii" in proc.stderr and "GOVPIPE_PII_SALT" in proc.stderr
    assert not (tmp_path / "artifacts").exists()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (.ci/run installs it)")
def test_model_card_renders_in_headless_chromium(tmp_path, built):
    card = built / "reports" / "model_card.html"  # as `dvc repro` wrote it
    shot = tmp_path / "card.png"
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
         "--window-size=1200,3000", f"--screenshot={shot}", "--dump-dom", card.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert shot.exists() and shot.stat().st_size > 20_000, dom.stderr[-2000:]
    assert "Bias audit" in dom.stdout and "<svg" in dom.stdout
