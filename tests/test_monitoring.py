"""After deployment, for real: the server's audit log, /feedback, the monitor and verify.

One server (the built pipeline's model, one HTTP process) takes the test split and then a
shifted population; the monitor, run as `python -m pipeline.monitor`, must give the metrics
stage's figures on the first and an ALERT on the second. Separate short-lived servers cover
two HTTP processes x two workers under load, the log failing while serving, and refusing to
start. Every server is stopped by its fixture or test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pandas as pd
import pytest

from pipeline.audit.chain import records, verify
from tests.conftest import env, run
from tests.processes import free_port
from tests.serve_process import INPUTS, KEY, SALT, Server, serve_env

WITH_RACE = [*INPUTS, "race"]  # race: a declared attribute the model does not take
CANARY_ENV = "canary-env-7f3a9c@example.com"
CANARY_REQ = "canary-req-5d1e2b@example.com"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _records(df: pd.DataFrame) -> list[dict]:
    return [{c: (v.item() if hasattr(v, "item") else v) for c, v in r.items()}
            for r in df[WITH_RACE].to_dict("records")]


def _score(srv: Server, df: pd.DataFrame, prefix: str) -> list[tuple[str, int]]:
    ids, recs = [], _records(df)
    for i in range(0, len(recs), 500):
        rid = f"{prefix}{i}"
        r = srv.post({"records": recs[i:i + 500]}, headers={"X-Request-ID": rid})
        assert r.status_code == 200, r.text
        ids += [(rid, j) for j in range(len(recs[i:i + 500]))]
    return ids


def _monitor(work: Path, built: Path, *args: str) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "pipeline.monitor", *args,
                f"monitor.model={built / 'artifacts/model.pkl'}",
                f"monitor.reference={built / 'artifacts/split/train.parquet'}",
                f"monitor.log_dir={work / 'audit'}", f"monitor.output_dir={work / 'reports'}"],
               work, check=False, timeout=300)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("monitoring")


@pytest.fixture(scope="module")
def server(built, work):
    srv = Server(work, ["serve/source=local",
                        f"serve.source.path={built / 'artifacts' / 'model.pkl'}",
                        "serve.audit.flush_interval=0.2"],
                 extra_env={"GOVPIPE_TEST_CANARY": CANARY_ENV}).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def test_split(built) -> pd.DataFrame:
    return pd.read_parquet(built / "artifacts" / "split" / "test.parquet")


def test_live_figures_equal_the_metrics_stage_on_the_test_split(server, work, built,
                                                                 test_split, tmp_path):
    ids = _score(server, test_split, "t")
    outcomes = [{"request_id": rid, "index": j, "label": y}
                for (rid, j), y in zip(ids, test_split["income"], strict=True)]
    for i in range(0, len(outcomes), 1000):
        r = server.post({"outcomes": outcomes[i:i + 1000]}, path="/feedback")
        assert r.status_code == 200 and r.json() == {"accepted": len(outcomes[i:i + 1000])}
    assert server.metric("govpipe_selection_rate", attribute="sex", group="Female") > 0
    until = pd.Timestamp(time.time() + 1, unit="s", tz="UTC").isoformat()
    (work / "phase1-until").write_text(until)  # later tests judge this window again
    proc = _monitor(work, built, "--until", until)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((work / "reports" / "monitoring.json").read_text())
    assert report["verdict"] == "OK", report["reasons"] + report["insufficient"]
    (w,) = report["windows"]
    assert w["records"] == w["outcomes"] == len(test_split)
    stage = json.loads((built / "reports" / "fairness.json").read_text())["splits"]["test"]
    live = w["fairness"]["outcomes"]
    for key in ("sex", "race", "sex*race"):
        for metric in ("disparate_impact_ratio", "equal_opportunity_difference",
                       "equalized_odds_difference"):
            assert live["breakdowns"][key]["metrics"][metric] == \
                stage["breakdowns"][key]["metrics"][metric], (key, metric)
    perf = json.loads((built / "metrics" / "performance.json").read_text())["test"]
    assert {k: w["performance"][k] for k in ("acc", "bal_acc", "roc_auc")} == \
        {k: perf[k] for k in ("acc", "bal_acc", "roc_auc")}
    assert all(f["psi"] < 0.05 for f in w["drift"]["features"])

    if CHROMIUM is None:
        pytest.skip("Chromium not installed")
    shot = tmp_path / "monitoring.png"
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
         "--window-size=1200,3000", f"--screenshot={shot}", "--dump-dom",
         (work / "reports" / "monitoring.html").as_uri()],
        capture_output=True, text=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 20_000, dom.stderr[-2000:]
    assert "Monitoring report" in dom.stdout and "<svg" in dom.stdout
    assert "Selection rate by sex" in dom.stdout and "PSI per feature" in dom.stdout


def test_a_shifted_population_alerts_naming_the_attribute_and_the_drift(server, work, built,
                                                                        test_split):
    since = time.time()
    df = test_split
    shifted = pd.concat([df[(df["sex"] == "Female") & (df["education-num"] <= 9)],
                         df[(df["sex"] == "Male") & (df["education-num"] >= 13)]])
    shifted = shifted.assign(**{"hours-per-week": (shifted["hours-per-week"] + 20).clip(
        upper=99)})
    _score(server, shifted, "s")
    proc = _monitor(work, built, "--since", pd.Timestamp(since, unit="s", tz="UTC").isoformat(),
                    "--fail-on-alert")
    assert proc.returncode == 1, proc.stderr[-3000:]
    report = json.loads((work / "reports" / "monitoring.json").read_text())
    assert report["verdict"] == "ALERT"
    reasons = " | ".join(report["reasons"])
    assert "disparate_impact_ratio on sex" in reasons, reasons
    assert "drift: PSI of hours-per-week" in reasons and "drift: PSI of education-num" in reasons
    # no outcomes for these: the outcome-based gates are insufficient evidence, not passes
    assert any("outcome(s)" in r for r in report["insufficient"])


def test_small_groups_are_insufficient_evidence_and_an_empty_window_an_error(server, work,
                                                                           built):
    until = (work / "phase1-until").read_text()  # the test split only
    # groups of the test split are under 5000 rows: excluded, so nothing left to compare
    proc = _monitor(work, built, "--until", until, "--fail-on-alert", "metrics.min_count=5000")
    assert proc.returncode == 1, proc.stderr[-3000:]
    report = json.loads((work / "reports" / "monitoring.json").read_text())
    assert report["verdict"] == "INSUFFICIENT_EVIDENCE" and not report["reasons"]
    assert any("sex: " in r and "undefined" in r for r in report["insufficient"])
    proc = _monitor(work, built, "--since", "2030-01-01")
    assert proc.returncode == 2 and "no prediction of model" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_feedback_refuses_unknown_duplicate_and_malformed_outcomes(server, work):
    r = server.post({"outcomes": [{"request_id": "t0", "index": 0, "label": ">50K"},
                                  {"request_id": "never-seen", "label": ">50K"}]},
                    path="/feedback")
    assert r.status_code == 404 and "never-seen" in r.text
    r = server.post({"outcomes": [{"request_id": "t0", "index": 0, "label": ">50K"}]},
                    path="/feedback")
    assert r.status_code == 409 and r.json()["detail"][0]["type"] == "duplicate_outcome"
    r = server.post({"outcomes": [{"request_id": "s0", "index": 0, "label": "rich"}]},
                    path="/feedback")
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "outcomes[0].label"
    for bad in ({"outcomes": []}, {"outcomes": "x"}, {"results": []},
                {"outcomes": [{"request_id": "s0", "index": "0", "label": ">50K"}]},
                {"outcomes": [{"request_id": "bad id!", "label": ">50K"}]}):
        assert server.post(bad, path="/feedback").status_code == 422, bad
    assert server.post(b'{"outcomes": [', path="/feedback").status_code == 422
    assert server.post({"outcomes": [{"request_id": "s0", "label": ">50K"}]}, key=None,
                       path="/feedback").status_code == 401
    # nothing of the refused batches was appended: s0 still takes its outcome once
    assert server.post({"outcomes": [{"request_id": "s0", "label": ">50K"}]},
                       path="/feedback").status_code == 200


def test_pii_canaries_the_key_and_the_salt_never_reach_the_log_or_reports(server, work,
                                                                        test_split):
    rec = _records(test_split.head(1))[0]
    r = server.post({**rec, "email": CANARY_REQ})
    assert r.status_code == 422
    assert server.post({"records": [rec, {**rec, "name": CANARY_REQ}]}).status_code == 422
    time.sleep(0.5)
    for path in [*(work / "audit").iterdir(), *(work / "reports").iterdir()]:
        text = path.read_text(errors="replace")
        for secret in (CANARY_ENV, CANARY_REQ, KEY, SALT):
            assert secret not in text, (path.name, secret[:12])
    assert verify(work / "audit").ok


def test_two_http_processes_two_workers_under_load_log_every_record_once(built, tmp_path):
    srv = Server(tmp_path, ["serve/source=local",
                            f"serve.source.path={built / 'artifacts' / 'model.pkl'}",
                            "serve.api_servers=2", "serve.workers_per_device=2",
                            "serve.audit.rotate_mb=0.05"]).start()
    df = pd.read_parquet(built / "artifacts" / "split" / "test.parquet").head(1200)
    recs = _records(df)
    sent = 0
    try:
        def one(i: int) -> int:
            batch = recs[i * 3:i * 3 + 1 + i % 3]  # 1-3 records, all distinct: cache misses
            with httpx.Client(timeout=30) as c:
                r = c.post(f"{srv.url}/predict", json={"records": batch},
                           headers={"X-API-Key": KEY, "X-Request-ID": f"load{i}"})
            assert r.status_code == 200, r.text
            return len(batch)

        with ThreadPoolExecutor(16) as pool:
            sent = sum(pool.map(one, range(400)))
    finally:
        srv.stop()
    report = verify(tmp_path / "audit")
    assert report.ok, report.problems
    assert report.streams == 2 and not report.open_streams  # both closed on SIGTERM
    assert report.files > 2  # rotated under load
    preds = [r for r in records(tmp_path / "audit") if r["kind"] == "prediction"]
    assert len(preds) == report.kinds["prediction"] == sent
    assert len({(r["request_id"], r["index"]) for r in preds}) == sent


def test_the_log_failing_while_serving_refuses_scoring_recovers_and_survives_a_kill(
        built, tmp_path):
    srv = Server(tmp_path, ["serve/source=local",
                            f"serve.source.path={built / 'artifacts' / 'model.pkl'}",
                            "serve.audit.rotate_mb=0.01", "serve.audit.flush_interval=0.1",
                            "serve.cache.enabled=false"]).start()
    rec = _records(pd.read_parquet(built / "artifacts" / "split" / "test.parquet").head(1))[0]
    audit, moved = tmp_path / "audit", tmp_path / "audit.moved"
    ok = 0
    try:
        for _ in range(5):
            ok += srv.post(rec).status_code == 200
        time.sleep(0.5)
        audit.rename(moved)
        audit.write_text("not a directory")  # the next segment cannot be created
        for _ in range(200):
            status = srv.post(rec).status_code
            ok += status == 200
            if status == 503:
                break
            time.sleep(0.02)
        assert status == 503
        health = httpx.get(f"{srv.url}/readyz", timeout=5)
        assert health.status_code == 503 and "audit log" in health.json()["audit_log"]
        audit.unlink()
        moved.rename(audit)
        deadline = time.monotonic() + 10
        while httpx.get(f"{srv.url}/readyz", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "the server did not recover"
            time.sleep(0.2)
        ok += srv.post(rec).status_code == 200
        time.sleep(0.5)  # > flush_interval: everything answered is on disk
        os.killpg(srv.proc.pid, signal.SIGKILL)  # a crash: no flush, no close record
    finally:
        srv.stop()
    report = verify(audit)
    assert report.ok, report.problems  # no partial line, no gap
    assert report.open_streams  # killed: its stream has no close record
    assert report.kinds["prediction"] == ok  # every answered record logged, none lost


def test_the_server_refuses_to_start_without_a_writable_log_or_a_salt(built, tmp_path):
    (tmp_path / "blocker").write_text("a file where the log directory should be")
    base = [sys.executable, "-m", "serve", "serve/source=local",
            f"serve.source.path={built / 'artifacts' / 'model.pkl'}",
            f"serve.port={free_port()}"]
    proc = subprocess.run([*base, "serve.audit.dir=blocker/audit"], cwd=tmp_path,
                          env=serve_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "serve.audit.dir blocker/audit" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = subprocess.run(base, cwd=tmp_path, env=env(GOVPIPE_API_KEY=KEY, GOVPIPE_PII_SALT=""),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "GOVPIPE_PII_SALT" in proc.stderr


def test_a_verdict_tags_the_champion_and_make_champion_shows_it(tmp_path):
    from mlflow import MlflowClient

    from pipeline.config import validate
    from pipeline.runtime.errors import DataError
    from pipeline.tracking.monitoring import tag_champion
    from tests.conftest import ROOT, composed

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    c = MlflowClient(tracking_uri=uri, registry_uri=uri)
    c.create_registered_model("monitored")
    v = c.create_model_version("monitored", f"file://{tmp_path}", tags={"model_sha256": "ab" * 32})
    c.set_registered_model_alias("monitored", "champion", v.version)
    raw = composed(f"registry.tracking_uri={uri}", "registry.model_name=monitored")
    reg = validate(raw).registry
    assert tag_champion(reg, "monitoring", "ab" * 32, "ALERT",
                        ["sex: disparate_impact_ratio on sex = 0.61 fails >= 0.8",
                         "contact jane@example.com"], "2026-12-01T00:00:00+00:00") == "1"
    with pytest.raises(DataError, match="not the monitored model"):
        tag_champion(reg, "monitoring", "cd" * 32, "OK", [], "2026-12-01T00:00:00+00:00")
    proc = run([sys.executable, "-m", "pipeline.champion", f"registry.tracking_uri={uri}",
                "registry.model_name=monitored"], ROOT)
    assert "monitoring: ALERT" in proc.stdout
    assert "monitoring_reasons: sex: disparate_impact_ratio on sex = 0.61" in proc.stdout
    assert "jane@example.com" not in proc.stdout and "[EMAIL]" in proc.stdout
