"""The CI template for users (README "CI for your repo"): `make report` on a real git repo with
a base branch and a changed experiment, checked number by number against the metrics files of
each branch; both workflow files against their vendored schemas; the verdict step, as the
workflows write it, failing on a REJECTED workspace; bad input."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.report import DEFAULT_OUT, num
from tests.conftest import ROOT, VENV_BIN, clone_built, make, run

DVC = str(VENV_BIN / "dvc")
GITHUB = ROOT / ".github" / "workflows" / "govpipe.yml"
GITLAB = ROOT / ".gitlab-ci.yml"
CHART = DEFAULT_OUT.with_suffix(".svg")


@pytest.fixture(scope="module")
def pr_repo(tmp_path_factory, built) -> Path:
    """`main`: the default pipeline's results, committed (VALIDATED). Checked out: branch
    `unmitigated`, one experiment changed (`model=logreg mitigation=none`: REJECTED on the
    four-fifths rule for sex; logreg, the cheapest model to retrain) and its stages rerun (train,
    metrics, governance), results committed."""
    repo = clone_built(built, tmp_path_factory.mktemp("report") / "repo")
    run(["git", "checkout", "-qb", "unmitigated"], repo)
    run([sys.executable, "-m", "pipeline.compose", "model=logreg", "mitigation=none"], repo)
    run(["git", "commit", "-qam", "experiment: logreg, no mitigation"], repo)
    run([DVC, "repro", "governance"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "experiment results"], repo)
    # The workflows' own commands (`make verdict`) run here as written, so the copy's setup is
    # marked done, as `make run` leaves it; this test run's venv is on PATH.
    (repo / ".venv").mkdir()
    (repo / ".venv" / ".synced").touch()
    return repo


def _tables(md: str) -> dict[str, list[list[str]]]:
    """Each section's table rows (a section: a heading or a `<details>` summary), cells
    unescaped, without Markdown's backticks and bold."""
    out: dict[str, list[list[str]]] = {}
    section = ""
    for line in md.splitlines():
        if line.startswith("#") or "<summary>" in line:
            section = re.sub(r"<[^>]+>", "", line).lstrip("#").strip()
        elif line.startswith("| ") and not line.startswith("|---"):
            cells = [c.strip().replace("\\|", "|").replace("`", "").strip("*")
                     for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            out.setdefault(section, []).append(cells)
    return {k: rows[1:] for k, rows in out.items()}  # drop the header row


def _value(text: str):
    return None if text == "—" else json.loads(text) if re.fullmatch(r"-?[\d.e+-]+", text) \
        else text


def _at(repo: Path, rev: str, rel: str) -> dict:
    return json.loads(run(["git", "show", f"{rev}:{rel}"], repo).stdout)


def test_make_report_compares_the_change_with_its_base_number_by_number(pr_repo, built):
    proc = make(pr_repo, "report", "BASE=main")
    md = (pr_repo / DEFAULT_OUT).read_text(encoding="utf-8")
    tables = _tables(md)
    base = {rel: _at(pr_repo, "main", rel) for rel in
            ("metrics/performance.json", "metrics/fairness.json", "metrics/governance.json")}
    head = {rel: json.loads((pr_repo / rel).read_text()) for rel in base}
    assert base["metrics/governance.json"]["verdict"] == "VALIDATED"
    assert head["metrics/governance.json"]["verdict"] == "REJECTED"

    top = {r[0]: r[1:] for r in tables["govpipe: ❌ REJECTED"]}
    assert top["verdict"] == ["VALIDATED", "REJECTED"]
    failing = head["metrics/governance.json"]["failed_gates"]
    assert "dir:sex" in failing.split(",")
    assert top["failing gates (blocking)"] == ["none", failing.replace(",", ", ")]
    assert "(`make verdict`): exit 1, REJECTED" in md  # what the CI job's verdict step does

    perf = {r[0]: r[1:3] for r in tables["Performance (test split)"]}
    flat = _flat(base["metrics/performance.json"]["test"]), \
        _flat(head["metrics/performance.json"]["test"])
    assert set(perf) == set(flat[1])
    for key, (b, h) in perf.items():
        assert (_value(b), _value(h)) == (flat[0][key], flat[1][key]), key

    fair = tables["Fairness (test split)"]
    assert {a for a, *_ in fair} >= {"sex", "race", "sex*race"}
    for attribute, metric, b, h, _ in fair:
        assert _value(b) == base["metrics/fairness.json"]["test"][attribute][metric]
        assert _value(h) == head["metrics/fairness.json"]["test"][attribute][metric]

    gates = {r[0]: r[1:] for r in tables["Gates (test split)"]}
    judged = json.loads((pr_repo / "reports" / "governance.json").read_text())["gates"]
    assert len(gates) == len(judged)
    for g in judged:  # every gate: rule, enforcement, base and new value, result
        key = g["id"].split(":", 1)[1]
        rule, enforcement, b, h, _, result = gates[
            g["metric"] + (f" on {g['attribute']}" if g["attribute"] else "")]
        assert rule == f"{'≥' if g['direction'] == '>=' else '≤'} {num(g['threshold'])}"
        assert enforcement == g["enforcement"]
        assert _value(b) == base["metrics/governance.json"]["gates"][key]
        assert _value(h) == head["metrics/governance.json"]["gates"][key] == g["value"]
        assert result == ("✅ passes" if g["passed"] else
                          "⚠️ fails (advisory)" if g["advisory"] else "❌ fails"), key
    assert gates["disparate_impact_ratio on sex"][-1] == "❌ fails"

    params = {r[0]: r[1:] for r in tables["Parameters changed"]}
    assert params["mitigation.name"] == ["threshold_optimizer", "none"]
    assert params["model.name"] == ["hgb", "logreg"]

    # The chart's figures: the base's plot data comes from the DVC cache (`built` ran main).
    rates = {r[0]: r[1:] for r in tables["Selection rates"]}
    plot = "plots/selection_rate_test.json"
    for side, rows in ((0, json.loads((built / plot).read_text())),
                       (1, json.loads((pr_repo / plot).read_text()))):
        assert {r["group"]: r["selection_rate"] for r in rows} == \
            {g: _value(v[side]) for g, v in rates.items()}
    assert f"]({CHART.name})" in md
    svg = (pr_repo / CHART).read_text(encoding="utf-8")
    assert "<svg" in svg and "sex=Female" in svg and "race=Other (excluded)" in svg
    assert ">base<" in svg and ">this change<" in svg  # the legend of the two series
    changed = {(r[0], r[1]): r[2:4] for r in tables["Every DVC metric that changed"]}
    assert changed["metrics/fairness.json", "test.sex.dir"] == [
        num(base["metrics/fairness.json"]["test"]["sex"]["dir"]),
        num(head["metrics/fairness.json"]["test"]["sex"]["dir"])]
    assert "`metrics/promotion.json` is not in the workspace" in md  # register has not run
    assert proc.stdout.splitlines() == [str(DEFAULT_OUT), str(CHART)]
    # Git-ignored and no DVC output: the report leaves the clone as it was.
    assert run(["git", "status", "--porcelain"], pr_repo).stdout == ""


def test_report_as_on_a_runner_no_base_outputs_in_the_cache(pr_repo):
    """As CI sees it: the base is a remote-tracking ref, the DVC cache holds only the change's
    outputs (the base's plot data is then not available), and a free-text parameter edited in
    the workspace holds an e-mail address (scrubbed; governance is then stale: exit 2)."""
    cache, aside = pr_repo / ".dvc" / "cache", pr_repo / ".dvc" / "cache-aside"
    params = pr_repo / "params.yaml"
    run(["git", "update-ref", "refs/remotes/origin/main", "main"], pr_repo)
    text = params.read_text()
    assert "owners: govpipe maintainers" in text
    params.write_text(text.replace("owners: govpipe maintainers",
                                   "owners: Data team, jane.doe@example.com"))
    cache.rename(aside)
    try:
        make(pr_repo, "report", "BASE=origin/main")
    finally:
        aside.rename(cache)
        run(["git", "checkout", "-q", "params.yaml"], pr_repo)
    md = (pr_repo / DEFAULT_OUT).read_text(encoding="utf-8")
    tables = _tables(md)
    assert "is not in the DVC cache" in md and "only this change is shown" in md
    head = json.loads((pr_repo / "plots" / "selection_rate_test.json").read_text())
    assert {r[0]: r[1:] for r in tables["Selection rates"]} == \
        {r["group"]: ["—", num(r["selection_rate"])] for r in head}
    svg = (pr_repo / CHART).read_text(encoding="utf-8")
    assert ">base<" not in svg and ">this change<" not in svg  # one series, no legend
    # Committed metrics still come from git at origin/main.
    perf = {r[0]: r[1] for r in tables["Performance (test split)"]}
    assert _value(perf["acc"]) == _at(pr_repo, "main", "metrics/performance.json")["test"]["acc"]
    assert "jane.doe@example.com" not in md
    owners = {r[0]: r[1:] for r in tables["Parameters changed"]}["governance.model_card.owners"]
    assert owners == ["govpipe maintainers", "Data team, [EMAIL]"]
    assert "(`make verdict`): exit 2, evidence missing, stale or edited" in md


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def test_workflows_validate_against_their_vendored_schemas(tmp_path):
    check = str(VENV_BIN / "check-jsonschema")
    for path, schema, broken in ((GITHUB, "vendor.github-workflows", ("runs-on:", "runs_on:")),
                                 (GITLAB, "vendor.gitlab-ci", ("timeout: 1h", "timeout: [1]"))):
        ok = run([check, "--builtin-schema", schema, str(path)], ROOT, check=False)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        # The schema really is enforced: the same file with one key broken is refused.
        bad = tmp_path / path.name
        text = path.read_text()
        assert broken[0] in text
        bad.write_text(text.replace(broken[0], broken[1], 1))
        refused = run([check, "--builtin-schema", schema, str(bad)], ROOT, check=False)
        assert refused.returncode == 1, refused.stdout


def _github_steps() -> list[dict]:
    return yaml.safe_load(GITHUB.read_text())["jobs"]["govern"]["steps"]


def test_workflows_run_report_post_and_judge_in_that_order():
    """What the README says each workflow does, as the files say it (posting itself needs a
    token and a hosting service: configuration only)."""
    steps = _github_steps()
    runs = [s.get("run", "") for s in steps]
    order = [next(i for i, r in enumerate(runs) if r.startswith(cmd))
             for cmd in ("make run", "make report", "npx", "make verdict")]
    assert order == sorted(order)
    report, post = steps[order[1]], steps[order[2]]
    assert report["env"]["BASE"] == "origin/${{ github.base_ref }}"
    cml = re.compile(r"npx --yes @dvcorg/cml@\d+\.\d+\.\d+ comment update " + str(DEFAULT_OUT))
    assert cml.match(post["run"]) and "REPO_TOKEN" in post["env"]
    assert all(s["if"] == "github.event_name == 'pull_request'" for s in (report, post))
    gitlab = yaml.safe_load(GITLAB.read_text())
    script = "\n".join(gitlab["govern"]["script"])
    assert script.index("make run") < script.index('make report BASE="origin/$target"') \
        < script.index("make verdict")
    assert 'if [ -n "$CI_MERGE_REQUEST_TARGET_BRANCH_NAME" ]' in script
    assert set(gitlab["govern"]["artifacts"]["paths"]) == {str(DEFAULT_OUT), str(CHART)}
    assert gitlab["govern"]["artifacts"]["when"] == "always"
    assert cml.match(gitlab["comment"]["script"][0])
    [rule] = gitlab["comment"]["rules"]
    assert rule == {"if": '$CI_PIPELINE_SOURCE == "merge_request_event" && $REPO_TOKEN',
                    "when": "always"}  # posted on REJECTED too


def test_the_report_shows_the_registry_decision_once_register_ran():
    """Rendering only (the register stage's own tests cover metrics/promotion.json)."""
    from pipeline.report import render

    promotion = {"policy_verdict": "VALIDATED", "eligible": 1, "registered": 1}
    diff = {"metrics/promotion.json": {k: {"old": None, "new": v} for k, v in promotion.items()}}
    head = {"governance": {"verdict": "VALIDATED", "failed_gates": "", "warnings": 0},
            "governance_report": {"split": "test", "gates": [], "warnings": []},
            "performance": {}, "fairness": {}, "promotion": promotion}
    md = render("main", "a" * 40, "b" * 40, head, diff, {}, (0, ["VALIDATED: model …"]),
                "pr_report.svg", [], "note")
    top = {r[0]: r[1:] for r in _tables(md)["govpipe: ✅ VALIDATED"]}
    for key, value in promotion.items():
        assert top[f"registry: {key} (metrics/promotion.json)"] == ["—", str(value)]
    assert "is not in the workspace" not in md


def test_the_verdict_step_fails_the_job_on_rejected(pr_repo):
    steps = _github_steps()
    [step] = [s for s in steps if "verdict" in s.get("run", "")]
    assert "continue-on-error" not in step
    assert step is steps[-1]  # after the report is posted
    pipeline = next(s for s in steps if s.get("id") == "pipeline")
    assert pipeline["run"] == "make run" and "steps.pipeline.outcome == 'success'" in step["if"]
    govern = yaml.safe_load(GITLAB.read_text())["govern"]
    assert "allow_failure" not in govern
    [line] = [ln for ln in govern["script"] if "verdict" in ln]
    for command in {step["run"], line}:  # each as the runner would run it, in this workspace
        proc = run(["bash", "-eo", "pipefail", "-c", command], pr_repo, check=False)
        # make exits 2 whenever a recipe fails, and names the recipe's own status: verdict's 1.
        assert proc.returncode == 2 and "verdict] Error 1" in proc.stderr, \
            proc.stdout + proc.stderr
        assert "REJECTED" in proc.stderr and "dir:sex" in proc.stderr
    try:  # ... and passes on the base's VALIDATED workspace
        run(["git", "checkout", "-q", "main"], pr_repo)
        run([DVC, "checkout", "-q", "--with-deps", "governance"], pr_repo)
        ok = run(["bash", "-eo", "pipefail", "-c", step["run"]], pr_repo, check=False)
        assert ok.returncode == 0 and "VALIDATED" in ok.stdout, ok.stdout + ok.stderr
    finally:
        run(["git", "checkout", "-q", "unmitigated"], pr_repo)
        run([DVC, "checkout", "-q", "--with-deps", "governance"], pr_repo)


def test_bad_input_is_a_clear_error_with_exit_2_and_nothing_written(pr_repo, tmp_path):
    for rel in (DEFAULT_OUT, CHART):
        (pr_repo / rel).unlink(missing_ok=True)

    def report(cwd: Path, *args: str) -> subprocess.CompletedProcess:
        return run([sys.executable, "-m", "pipeline.report", *args], cwd, check=False)

    outside = tmp_path / "not-a-repo"
    outside.mkdir()
    bare = tmp_path / "no-results"
    bare.mkdir()
    run(["git", "init", "-q", "-b", "main"], bare)
    shutil.copy(ROOT / "dvc.yaml", bare / "dvc.yaml")
    run(["git", "add", "-A"], bare)
    run(["git", "commit", "-qm", "pipeline, never run"], bare)
    cases = [
        (outside, ("--base", "main"), "is not inside a git repository"),
        (pr_repo, ("--base", "no-such-branch"), "base 'no-such-branch' is not a commit"),
        (pr_repo, (), "--base is required"),
        (pr_repo, ("--base", "main", "--colour"), "unknown argument '--colour'"),
        (pr_repo / "conf", ("--base", "main"), "is not the root of a DVC pipeline"),
        (bare, ("--base", "main"), "no pipeline results in the workspace"),
    ]
    for cwd, args, message in cases:
        proc = report(cwd, *args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert not list(cwd.rglob("pr_report.*")), args
    # Through make, as the README says: its own exit status is 2 whenever a recipe fails.
    proc = make(pr_repo, "report", "BASE=no-such-branch", check=False)
    assert proc.returncode == 2 and "git fetch origin no-such-branch" in proc.stderr
    assert not (pr_repo / DEFAULT_OUT).exists() and not (pr_repo / CHART).exists()
