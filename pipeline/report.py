"""report: the pull-request report — verdict and gates, metrics, fairness and parameters
against a base revision, and the selection-rate chart (`make report BASE=main`).

    python -m pipeline.report --base REF [--out reports/pr_report.md]

The head is the workspace as `dvc repro` left it (what `make verdict` judges); the base is any
git revision (`main`, `origin/main`, a commit). Base figures come from DVC itself, `dvc metrics
diff REF --json --all` and `dvc params diff REF --json`, so they are what `dvc metrics show`
gives at that revision: committed metrics from git, DVC-cached ones (`metrics/promotion.json`,
the plot data) from the cache. A CI runner usually has no cache for the base: those figures
are then reported as not available, never guessed. The report runs `python -m pipeline.verdict`
and states its exit status, so it says exactly what the CI job's verdict step will do.

Writes OUT (Markdown) and OUT with `.svg` (the chart, linked from OUT by a relative path, which
`cml comment create` uploads), both or neither. They are git-ignored and not DVC outputs: a
report compares two revisions, so it belongs to neither. The whole report, and the chart's
group labels, pass the configured PII scrubber (parameters are free text). Exit 2 with the
reason and nothing written: not at the root of a git + DVC repo, a base that is not a commit, no
pipeline results in the workspace, a DVC command that fails.
"""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from pipeline.privacy import Scrubber
from pipeline.runtime import logs
from pipeline.runtime.errors import ConfigError, PipelineError
from pipeline.runtime.outputs import Outputs
from pipeline.runtime.runner import EXIT_USER_ERROR
from pipeline.tracking.settings import load_config

log = logging.getLogger("pipeline.report")

USAGE = "usage: python -m pipeline.report --base REF [--out reports/pr_report.md]"
DEFAULT_OUT = Path("reports/pr_report.md")
GOV_METRICS, GOV_REPORT = "metrics/governance.json", "reports/governance.json"
PERFORMANCE, FAIRNESS, PROMOTION = ("metrics/performance.json", "metrics/fairness.json",
                                    "metrics/promotion.json")
VERDICT_EXIT = {0: "VALIDATED, may become champion: the job passes",
                1: "REJECTED or policy overridden: the job fails",
                2: "evidence missing, stale or edited: the job fails"}
_LOG_PREFIX = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ")  # logs.FORMAT's asctime


def _args(argv: list[str]) -> tuple[str, Path]:
    base, out, i = None, DEFAULT_OUT, 0
    while i < len(argv):
        flag, eq, value = argv[i].partition("=")
        if flag in ("--base", "--out"):
            if not eq:
                if i + 1 >= len(argv):
                    raise ConfigError(f"{flag} needs a value; {USAGE}")
                i, value = i + 1, argv[i + 1]
            if not value:
                raise ConfigError(f"{flag} is empty; {USAGE}")
            base, out = (value, out) if flag == "--base" else (base, Path(value))
        else:
            raise ConfigError(f"unknown argument {argv[i]!r}; {USAGE}")
        i += 1
    if base is None:
        raise ConfigError(f"--base is required (the revision to compare with); {USAGE}")
    if out.suffix != ".md":
        raise ConfigError(f"--out {out}: must end in .md (the chart is written next to it)")
    return base, out


def _cmd(args: list[str], what: str) -> str:
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        raise PipelineError(f"{what} failed: {lines[-1] if lines else f'exit {proc.returncode}'}")
    return proc.stdout


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], capture_output=True, text=True)


def _dvc_json(*args: str) -> dict:
    out = _cmd([sys.executable, "-m", "dvc", *args, "--json"], f"`dvc {' '.join(args)}`")
    return json.loads(out) if out.strip() else {}


def check_repo(root: Path, base: str) -> str:
    """The base's full commit sha, after checking that `root` is the top of a git work tree
    with a DVC pipeline and that the workspace holds pipeline results."""
    top = _git("-C", str(root), "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        raise PipelineError(f"{root} is not inside a git repository: run `make report` at the "
                            "root of a clone of your pipeline")
    if Path(top.stdout.strip()).resolve() != root.resolve() or not (root / "dvc.yaml").exists():
        raise PipelineError(f"{root} is not the root of a DVC pipeline (no dvc.yaml here): run "
                            f"`make report` in {top.stdout.strip()}")
    sha = _git("-C", str(root), "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}")
    if sha.returncode != 0:
        raise PipelineError(f"base {base!r} is not a commit in this repository: fetch it "
                            f"(`git fetch origin {base.removeprefix('origin/')}`) or name "
                            "another with BASE=…")
    missing = [p for p in (GOV_METRICS, GOV_REPORT, PERFORMANCE, FAIRNESS)
               if not (root / p).is_file()]
    if missing:
        raise PipelineError(f"no pipeline results in the workspace ({', '.join(missing)} "
                            "missing): run the pipeline first (`make run` or `dvc repro`)")
    return sha.stdout.strip()


def _read(root: Path, rel: str) -> Any:
    try:
        return json.loads((root / rel).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise PipelineError(f"{rel}: cannot read it as JSON ({e})") from None


def _base_plot(root: Path, rel: str, sha: str) -> list[dict] | None:
    """The base's plot data, from the DVC cache (or a configured remote); None if neither
    holds it, as on a CI runner that only ran the head."""
    import dvc.api
    from dvc.exceptions import DvcException

    try:
        return json.loads(dvc.api.read(rel, repo=str(root), rev=sha))
    except (DvcException, OSError, ValueError):
        return None


def _verdict(root: Path) -> tuple[int, list[str]]:
    """`python -m pipeline.verdict` on the workspace: its exit status and its own lines."""
    proc = subprocess.run([sys.executable, "-m", "pipeline.verdict"], cwd=root,
                          capture_output=True, text=True)
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    # Its own report, not the log records that repeat it; an error exists only as a record.
    own = [ln for ln in lines if not _LOG_PREFIX.match(ln)] or \
        [_LOG_PREFIX.sub("", ln) for ln in lines]
    return proc.returncode, own


# -- Markdown ------------------------------------------------------------------------------

def num(x: Any) -> str:
    """A figure as the metrics files hold it (rounded to 6 decimals there), "—" if absent."""
    if x is None:
        return "—"
    if isinstance(x, bool) or not isinstance(x, int | float):
        return cell(str(x))
    return str(x) if isinstance(x, int) else repr(round(x, 6) + 0.0)


def delta(old: Any, new: Any) -> str:
    if isinstance(old, bool) or isinstance(new, bool) or \
            not (isinstance(old, int | float) and isinstance(new, int | float)):
        return "" if old == new else "changed"
    d = new - old if isinstance(old, int) and isinstance(new, int) else round(new - old, 6) + 0.0
    return "0" if d == 0 else (f"+{num(d)}" if d > 0 else num(d))


def cell(text: str) -> str:
    """Text safe in a GFM table cell (a pipe splits cells even inside backticks)."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def code(text: str) -> str:
    return f"`{cell(text)}`"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows)]


def _leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for k, v in tree.items():
        out.update(_leaves(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _old(diff: dict, rel: str, key: str) -> Any:
    return diff.get(rel, {}).get(key, {}).get("old")


GATE_RESULT = {(True, False): "✅ passes", (True, True): "✅ passes",
               (False, False): "❌ fails", (False, True): "⚠️ fails (advisory)"}


def render(base: str, base_sha: str, head_sha: str, head: dict[str, Any], diff: dict,
           params: dict, verdict: tuple[int, list[str]], chart: str | None,
           rates: list[tuple[str, float | None, float | None]], base_plot_note: str) -> str:
    gov, gov_report = head["governance"], head["governance_report"]
    promotion = head.get("promotion")
    split = gov_report.get("split", "test")
    old = lambda rel, key: _old(diff, rel, key)  # noqa: E731
    icon = "✅" if gov.get("verdict") == "VALIDATED" else "❌"
    md = [f"## govpipe: {icon} {gov.get('verdict')}", "",
          f"This change (`{head_sha[:12]}`, the workspace as `dvc repro` left it) against base "
          f"{code(base)} (`{base_sha[:12]}`).", ""]

    def gates_cell(v: Any) -> str:
        return ", ".join(code(g) for g in v.split(",") if g) if isinstance(v, str) and v \
            else ("none" if v == "" else "—")

    rows = [["verdict", num(old(GOV_METRICS, "verdict")), f"**{num(gov.get('verdict'))}**"],
            ["failing gates (blocking)", gates_cell(old(GOV_METRICS, "failed_gates")),
             gates_cell(gov.get("failed_gates"))],
            ["advisory gates failing", num(old(GOV_METRICS, "warnings")),
             num(gov.get("warnings"))]]
    for key in ("policy_verdict", "eligible", "registered"):
        rows.append([f"registry: {key} ({code(PROMOTION)})", num(old(PROMOTION, key)),
                     num((promotion or {}).get(key))])
    md += _table(["", f"base {code(base)}", "this change"], rows)
    rc, lines = verdict
    md += ["", f"**CI verdict step** (`make verdict`): exit {rc}, "
               f"{VERDICT_EXIT.get(rc, 'unexpected exit status: the job fails')}."]
    if lines:
        md += ["", "```", *lines, "```"]
    if promotion is None:
        md += ["", f"{code(PROMOTION)} is not in the workspace: the register stage has not run."]
    if gov_report.get("warnings"):
        md += ["", "Advisory gates failing (reported, not blocking):",
               *(f"- ⚠️ {cell(w)}" for w in gov_report["warnings"])]

    md += ["", f"### Gates ({split} split)", ""]
    rows = []
    for g in gov_report.get("gates", []):
        key = g["id"].split(":", 1)[1]
        name = code(g["metric"]) + (f" on {code(g['attribute'])}" if g.get("attribute") else "")
        rule = f"{'≥' if g['direction'] == '>=' else '≤'} {num(g['threshold'])}"
        if g.get("basis", "estimate") != "estimate":
            rule += f" ({g['basis'].replace('_', ' ')}: {num(g.get('compared'))})"
        rows.append([name, rule, g.get("enforcement", ""),
                     num(old(GOV_METRICS, f"gates.{key}")), num(g.get("value")),
                     delta(old(GOV_METRICS, f"gates.{key}"), g.get("value")),
                     GATE_RESULT[(bool(g["passed"]), bool(g.get("advisory")))]])
    md += _table(["gate", "rule", "enforcement", "base", "this change", "Δ", "result"], rows)

    perf = _leaves(head["performance"].get(split, {}))
    md += ["", f"### Performance ({split} split)", ""]
    md += _table(["metric", "base", "this change", "Δ"],
                 [[code(k), num(old(PERFORMANCE, f"{split}.{k}")), num(v),
                   delta(old(PERFORMANCE, f"{split}.{k}"), v)] for k, v in perf.items()])
    md += ["", f"### Fairness ({split} split)", "",
           "`dir`: disparate impact ratio (1 is parity); `spd`, `eod`, `eqodds`: statistical "
           "parity, equal opportunity, equalized odds differences (0 is parity).", ""]
    fair = _leaves(head["fairness"].get(split, {}))
    md += _table(["attribute", "metric", "base", "this change", "Δ"],
                 [[code(k.rsplit(".", 1)[0]), code(k.rsplit(".", 1)[1]),
                   num(old(FAIRNESS, f"{split}.{k}")), num(v),
                   delta(old(FAIRNESS, f"{split}.{k}"), v)] for k, v in fair.items()])

    md += ["", "### Parameters changed", ""]
    changed = [(k, v) for k, v in params.get("params.yaml", {}).items()]
    md += (_table(["parameter", "base", "this change"],
                  [[code(k), num(v.get("old")), num(v.get("new"))] for k, v in sorted(changed)])
           if changed else ["None: `params.yaml` is the same as at the base."])

    md += ["", f"### Selection rate by group ({split} split)", ""]
    if chart:
        md += [f"![selection rate by group, base and this change]({chart})", ""]
    md += [base_plot_note, "", "<details><summary>Selection rates</summary>", ""]
    md += _table(["group", "base", "this change"], [[code(g), num(b), num(h)]
                                                   for g, b, h in rates])
    md += ["", "</details>", "", "<details><summary>Every DVC metric that changed</summary>",
           ""]
    rows = [[code(rel), code(k), num(v.get("old")), num(v.get("new")),
             delta(v.get("old"), v.get("new"))]
            for rel, entries in sorted(diff.items()) for k, v in sorted(entries.items())
            if v.get("old") != v.get("new")]
    md += _table(["file", "metric", "base", "this change", "Δ"], rows) if rows else ["None."]
    md += ["", "</details>", ""]
    return "\n".join(md)


# -- chart ---------------------------------------------------------------------------------

def selection_rate_chart(rates: list[tuple[str, float | None, float | None]],
                         excluded: set[str], title: str) -> str:
    """Horizontal bars per group, the base (grey) above this change (blue); groups the gates
    exclude (too small) hatched. Deterministic SVG, as the model card's charts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "govpipe"
    plt.rcParams["svg.fonttype"] = "none"
    n = max(len(rates), 1)
    fig, ax = plt.subplots(figsize=(7.5, 0.8 + 0.42 * n))
    ys = list(range(len(rates)))[::-1]
    has_base = any(b is not None for _, b, _ in rates)
    h = 0.38 if has_base else 0.7
    for y, (group, b, v) in zip(ys, rates, strict=True):
        hatch = "//" if group in excluded else None
        if has_base and b is not None:
            ax.barh(y + h / 2, b, height=h, color="#b0b7c3", hatch=hatch,
                    label="base" if y == ys[0] else None)
        if v is not None:
            ax.barh(y - h / 2 if has_base else y, v, height=h, color="#1f6feb", hatch=hatch,
                    label="this change" if y == ys[0] else None)
    ax.set_yticks(ys, [f"{g} (excluded)" if g in excluded else g for g, _, _ in rates],
                  fontsize=8)
    ax.set_xlabel("selection rate (share predicted the favourable label)")
    ax.set_title(title, fontsize=10, loc="left")
    ax.set_xlim(0, max([x for _, b, v in rates for x in (b, v) if x is not None] + [0.05]) * 1.1)
    if has_base:
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2, fontsize=8,
                  frameon=False)
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    return buf.getvalue()


def _rates(head: list[dict], base: list[dict] | None) -> list[tuple[str, Any, Any]]:
    h = {r["group"]: r["selection_rate"] for r in head}
    b = {r["group"]: r["selection_rate"] for r in base or []}
    return [(g, b.get(g), h.get(g)) for g in [*h, *(g for g in b if g not in h)]]


# -- the command ---------------------------------------------------------------------------

def build(root: Path, base: str, out: Path) -> list[Path]:
    """Check, gather, render, then write both files atomically; the paths written."""
    base_sha = check_repo(root, base)
    config = load_config([], root / "params.yaml")[0]
    scrub = Scrubber.from_config(config.privacy).scrub
    head = {"governance": _read(root, GOV_METRICS), "governance_report": _read(root, GOV_REPORT),
            "performance": _read(root, PERFORMANCE), "fairness": _read(root, FAIRNESS)}
    if (root / PROMOTION).is_file():
        head["promotion"] = _read(root, PROMOTION)
    split = head["governance_report"].get("split", "test")
    plot_rel = f"plots/selection_rate_{split}.json"
    if not (root / plot_rel).is_file():
        raise PipelineError(f"{plot_rel} missing: run the pipeline first (`make run` or "
                            "`dvc repro`)")
    diff = _dvc_json("metrics", "diff", base_sha, "--all")
    params = _dvc_json("params", "diff", base_sha)
    base_plot = _base_plot(root, plot_rel, base_sha)
    note = (f"Base figures from {code(plot_rel)} at {code(base)}." if base_plot is not None
            else f"The base's {code(plot_rel)} is not in the DVC cache (it is a DVC output, "
                 "not committed): only this change is shown. `dvc push` the base's outputs to "
                 "a remote the CI can pull from to compare.")
    rates = [(scrub(g), b, h) for g, b, h in _rates(_read(root, plot_rel), base_plot)]
    excluded = {f"{g['attribute']}={x['group']}" for g in head["governance_report"]["gates"]
                if g.get("attribute") for x in g.get("excluded_groups", [])}
    svg = selection_rate_chart(rates, excluded, f"Selection rate by group ({split} split)")
    head_sha = _git("-C", str(root), "rev-parse", "HEAD").stdout.strip()
    chart = out.with_suffix(".svg")
    text = scrub(render(base, base_sha, head_sha, head, diff, params, _verdict(root),
                        chart.name, rates, note))
    outputs = Outputs(root)

    def write() -> None:
        outputs.path(out).write_text(text, encoding="utf-8")
        outputs.path(chart).write_text(svg, encoding="utf-8")

    return outputs.run(write)


def main(argv: list[str]) -> int:
    logs.setup()
    try:
        base, out = _args(argv)
        written = build(Path.cwd(), base, out)
    except PipelineError as e:
        log.error("report not written: %s", e)
        return EXIT_USER_ERROR
    print("\n".join(str(p.relative_to(Path.cwd())) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
