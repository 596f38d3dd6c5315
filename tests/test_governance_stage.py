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


AUDIT_DATE = "2026-12-01"
# Mitchell et al.'s sections, then the LL 144 audit, the scan and the Annex IV map, in order.
SECTIONS = ("Verdict and warnings", "Model details", "Intended use", "Factors", "Metrics",
            "Evaluation data", "Training data", "Quantitative analyses",
            "Bias audit (NYC Local Law 144)", "Ethical considerations",
            "Caveats and recommendations", "Privacy scan", "EU AI Act Annex IV map")


@pytest.fixture(scope="module")
def card_run(built, tmp_path_factory) -> Path:
    """The default config judged once more, with an audit date (the card's only input that
    conf/ leaves unset), into its own run directory."""
    out = tmp_path_factory.mktemp("card")
    proc = stage(ROOT, "governance", f"+inputs={built}",
                 f"+governance.model_card.audit_date={AUDIT_DATE}", f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr
    return out


def test_default_config_is_validated_with_a_complete_card(card_run, built):
    gov = json.loads((card_run / "reports" / "governance.json").read_text())
    assert gov["verdict"] == "VALIDATED", gov["reasons"]
    assert gov["privacy_scan"]["findings"] == 0 and gov["privacy_scan"]["files_scanned"] >= 10
    model_sha = gov["identity"]["model_sha256"]
    import hashlib

    assert model_sha == hashlib.sha256((built / "artifacts" / "model.pkl").read_bytes()).hexdigest()
    md = (card_run / "reports" / "model_card.md").read_text()
    headings = re.findall(r"^## (.+)$", md, re.M)
    assert headings == list(SECTIONS)
    assert model_sha in md and "impact ratio" in md and "EXCLUDED" in md  # small race groups
    html = (card_run / "reports" / "model_card.html").read_text()
    assert "<svg" in html  # chart embedded; nothing fetched from elsewhere:
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', html) and "<link" not in html


def _section(md: str, title: str) -> str:
    return md.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_card_says_what_an_auditor_needs_and_warns_next_to_the_verdict(card_run, built):
    md = (card_run / "reports" / "model_card.md").read_text()
    top = _section(md, "Verdict and warnings")
    assert "| verdict | VALIDATED |" in top
    # the advisory failures and the sensitive input the server will require, under the verdict
    assert "| WARN | advisory gate failed: disparate_impact_ratio on race" in top
    assert "requires the sensitive attribute(s) sex in every request" in top
    assert "distribution date (governance.model_card.distribution_date)" in top
    assert 'The favourable label is ">50K"' in _section(md, "Intended use")
    metrics = _section(md, "Metrics")
    assert ('| selection rate | share of a group\'s people the model gives the favourable label '
            '">50K" |') in metrics
    assert '| FPR (false positive rate) | among people whose true label is "<=50K"' in metrics
    assert "percentile bootstrap, 200 replicates" in metrics
    assert "*Governance gates: the thresholds the verdict applies on the test split*" in metrics
    assert "| fairness:disparate_impact_ratio:sex | 0.8929 |" in metrics
    train = json.loads((built / "reports" / "train.json").read_text())
    training = _section(md, "Training data")
    assert all(f"| {f} |" in training for f in train["features"])
    assert "PII policies applied: no column is declared PII" in training
    assert "| missing workclass |" in training  # rows excluded at ingest, and why
    analyses = _section(md, "Quantitative analyses")
    assert "*sex*race (intersectional) on the test split" in analyses
    assert "| Female\\|Black | 418 |" in analyses  # n per intersectional cell
    audit = _section(md, "Bias audit (NYC Local Law 144)")
    assert f"| audit date | {AUDIT_DATE} |" in audit and "| next audit due | 2027-12-01 |" in audit
    assert "| historical or test data | test data (see below) |" in audit
    assert "| rows in an unknown category: sex*race | 0 |" in audit
    assert "held out by the split stage (seed 42" in audit  # how the test data was obtained
    assert "requires an independent auditor" in audit
    annex = _section(md, "EU AI Act Annex IV map")
    assert "| 2(d) | Data requirements" in annex and "| Training data; Evaluation data |" in annex


def _md_tables(text: str) -> dict[str, list[dict]]:
    """Tables of a Markdown section by caption, rows as {header: cell} ('—' is None)."""
    tables, lines = {}, text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("*") and i + 2 < len(lines) and lines[i + 2].startswith("| "):
            def cells(row: str) -> list[str]:
                return [c.strip().replace("\\|", "|")
                        for c in re.split(r"(?<!\\)\|", row.strip())[1:-1]]
            header, rows = cells(lines[i + 2]), []
            for row in lines[i + 4:]:
                if not row.startswith("|"):
                    break
                rows.append({h: (None if c == "—" else c)
                             for h, c in zip(header, cells(row), strict=True)})
            tables[line.strip("*")] = rows
    return tables


def test_ll144_figures_match_the_reports_and_the_scores(card_run, built):
    import numpy as np
    import pandas as pd

    from pipeline.model import load

    md = (card_run / "reports" / "model_card.md").read_text()
    tables = _md_tables(_section(md, "Bias audit (NYC Local Law 144)"))
    fair = json.loads((built / "reports" / "fairness.json").read_text())
    breakdowns = fair["splits"]["test"]["breakdowns"]
    scores = pd.read_parquet(built / "reports" / "scores.parquet")
    test = scores[scores["split"] == "test"].reset_index(drop=True)
    split = pd.read_parquet(built / "artifacts" / "split" / "test.parquet")
    assert list(scores.columns) == ["split", "score", "sex", "race"]  # no feature, no id
    # the scores file is the model's own scores of the test split, row for row
    assert np.array_equal(test["score"].to_numpy(), load(built / "artifacts" / "model.pkl")
                          .score(split))
    assert (test["sex"].astype(str) == split["sex"].astype(str)).all()
    median = float(np.median(test["score"]))
    cell = {"sex": test["sex"].astype(str), "race": test["race"].astype(str)}
    cell["sex*race"] = cell["sex"] + "|" + cell["race"]
    for caption, key in (("sex (attribute sex;", "sex"),
                         ("race/ethnicity (attribute race;", "race"),
                         ("sex × race/ethnicity (attribute sex*race;", "sex*race")):
        [rows] = [t for c, t in tables.items() if c.startswith(caption)]
        report = {g["group"]: g for g in breakdowns[key]["groups"]}
        assert [r["category"] for r in rows] == list(report)
        counted = [r for r in rows if int(r["n"]) / len(test) >= 0.02]
        scoring = {r["category"]: float((test["score"][cell[key] == r["category"]] > median)
                                        .mean()) for r in rows}
        top_sel = max(report[r["category"]]["selection_rate"] for r in counted)
        top_sco = max(scoring[r["category"]] for r in counted)
        for r in rows:
            g = report[r["category"]]
            assert int(r["n"]) == g["count"] and int(r["selected"]) == g["selected"]
            assert float(r["selection rate"]) == pytest.approx(g["selection_rate"], abs=5e-5)
            assert float(r["scoring rate"]) == pytest.approx(scoring[g["group"]], abs=5e-5)
            if r in counted:
                assert r["status"] == "included"
                assert float(r["impact ratio"]) == pytest.approx(
                    g["selection_rate"] / top_sel, abs=5e-5)
                assert float(r["impact ratio (scoring)"]) == pytest.approx(
                    scoring[g["group"]] / top_sco, abs=5e-5)
            else:
                assert r["status"] == "EXCLUDED" and r["impact ratio"] is None
                assert r["reason"] == f"share {g['count'] / len(test):.2%} < 2%"


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
    assert "<svg" in dom.stdout
    # every section, in order, as the browser parsed them; the verdict and warnings first
    rendered = [t.replace("&amp;", "&") for t in re.findall(r"<h2>(.*?)</h2>", dom.stdout)]
    assert rendered == list(SECTIONS)
    first = dom.stdout.split("<h2>Verdict and warnings</h2>", 1)[1].split("<h2>", 1)[0]
    assert '<span class="pass">VALIDATED</span>' in first
    assert '<span class="warn">WARN</span>' in first
    assert "audit date (governance.model_card.audit_date)" in first  # conf/ sets none
