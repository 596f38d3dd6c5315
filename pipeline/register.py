"""register: log the governed model to MLflow with full lineage, register it, and let the
promotion policy decide whether it becomes the champion.

    dvc repro register
    python -m pipeline.register            # standalone: same checks, registry from config

Re-derives, never trusts (pipeline.audit.rederive): tampered or stale evidence is refused
(exit 2). A REJECTED model is an outcome, not an error: under `governance.enforcement=block`
(or a hard block) nothing is registered and no alias moves, but the stage succeeds, so
`dvc exp run` keeps the experiment and `dvc exp show` lists its verdict and failing gates.
`python -m pipeline.verdict` (make verdict) is the command that fails CI on REJECTED.

A VALIDATED model judged under the committed policy competes under the promotion policy
(conf/registry/ `promotion`, pipeline.audit.promotion): it is compared with the round's anchor
champion on its own evaluation split (the champion re-scored on that split when it was judged
on another), and the champion becomes the best of the round (pipeline.tracking.champions), so
a sweep ends with the same champion whatever order its experiments finish in. Anything else
registered is the `challenger`.

One version per model sha256, under any concurrency (pipeline.tracking.client.store_lock; a
tracking server gets create-then-deduplicate). A registration that died half-way is completed
by the next run. DVC never restores this stage from its run cache (its output is `persist`):
reports/registration.json says what the last run did to the registry, metrics/promotion.json
(DVC-tracked) what follows from the inputs alone.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from pipeline.audit import keys, promotion
from pipeline.audit.rederive import (
    UPLOADS,
    Decision,
    Refused,
    check_judged,
    decide,
    read_governance,
    scan_uploads,
)
from pipeline.evaluation import seen_rows
from pipeline.evaluation.split_scores import score_split
from pipeline.fairness.report import summary
from pipeline.model import load
from pipeline.privacy import Scrubber
from pipeline.runtime.errors import ModelRefused
from pipeline.runtime.hashing import file_sha256
from pipeline.runtime.paths import (
    ATTESTATION,
    FAIRNESS,
    MODEL,
    PERFORMANCE,
    PROMOTION,
    REGISTRATION,
    SPLIT,
)
from pipeline.runtime.runner import Context, main
from pipeline.tracking import attestations, champions, lineage
from pipeline.tracking import payload as mlflow_payload
from pipeline.tracking.client import (
    ARTIFACT_SHA_TAG,
    SHA_TAG,
    Registry,
    RegistryError,
    component,
    redact,
    store_lock,
    validate_names,
)

log = logging.getLogger("pipeline.register")

OUTS = (PROMOTION, REGISTRATION, ATTESTATION)
UNTRACKED_OUTS = (REGISTRATION, ATTESTATION)  # not DVC outputs: see the module docstring
PARAMS = ("data", "split", "model", "mitigation", "metrics", "governance", "privacy", "registry",
          "seed")
# It re-hashes the judged sections against governance's params_hash and logs the config as
# MLflow params, so it reads nearly everything: params.yaml is one file dep in dvc.yaml.
PARAMS_FILE = True
FAULT_ENV = "GOVPIPE_FAULT_AFTER"  # test hook: "log" or "register" simulates a crash there
# What MLflow would record from the process (the script's absolute path, i.e. the checkout
# path, which can hold a user name or an e-mail address): fixed values instead.
SOURCE_TAGS = {"mlflow.source.name": "pipeline.register", "mlflow.source.type": "LOCAL"}


def _fault(step: str) -> None:
    if os.environ.get(FAULT_ENV) == step:
        raise RuntimeError(f"injected fault after '{step}' ({FAULT_ENV})")


# -- the MLflow side -----------------------------------------------------------------------------
def _tags(ctx: Context, gov: dict, decision: Decision, model_sha: str) -> tuple[dict, dict]:
    """(lineage tags, set once per version; judgement tags, refreshed on every run)."""

    p = ctx.params
    state = lineage.git_state(Path.cwd())
    identity = gov["identity"]
    scrub = Scrubber.from_config(p.privacy).scrub_obj
    lineage_tags = scrub({
        SHA_TAG: model_sha, "dataset": p.data.name,
        "git_commit": state["git_commit"], "git_dirty": str(state["git_dirty"]).lower(),
        "data_hash": identity["data_hash"], "params_hash": identity["params_hash"],
        "model": identity["model"] or "", "mitigation": identity["mitigation"] or "",
        "threshold": str(p.metrics.threshold),
        **({"dvc_exp_name": state["dvc_exp_name"]} if state["dvc_exp_name"] else {}),
        **({"dvc_exp_baseline": state["dvc_exp_baseline"]} if state["dvc_exp_baseline"] else {}),
    })
    judgement = scrub({
        "verdict": decision.verdict, "governance_enforcement": p.governance.enforcement,
        "policy_overrides": ",".join(decision.overrides),
        **mlflow_payload.gate_tags({"gates": [g.as_dict() for g in decision.gates],
                                    "privacy_scan": gov["privacy_scan"]}),
    })
    return lineage_tags, judgement


def _log_run(reg, exp_id: str, ctx: Context, model, tags: dict, params: dict,
             metrics: dict, config: dict) -> str:
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature

    spec = ctx.params.data
    example = mlflow_payload.synthetic_example(spec, model.input_columns)
    frame = pd.DataFrame(example)
    for c in frame.columns:
        if c in spec.columns and spec.columns[c].type == "category":
            frame[c] = pd.Categorical(frame[c], categories=spec.columns[c].categories)
    signature = infer_signature(pd.DataFrame(example), model.predict(frame))
    requirements = [f"{p}=={_version(p)}" for p in
                    ("scikit-learn", "fairlearn", "pandas", "numpy", "scipy", "cloudpickle")]
    mlflow.set_tracking_uri(reg.uri)
    with tempfile.TemporaryDirectory() as tmp:
        # Ship only the module the pickle refers to, not the whole pipeline package.
        code = Path(tmp) / "pipeline"
        code.mkdir()
        (code / "__init__.py").write_text("")
        shutil.copy2(Path(__file__).with_name("model.py"), code / "model.py")
        with mlflow.start_run(experiment_id=exp_id, tags={**tags, **SOURCE_TAGS}) as run:
            mlflow.log_params(params)
            mlflow.log_metrics(metrics)
            for rel in UPLOADS:
                mlflow.log_artifact(str(ctx.input(rel)), artifact_path=str(Path(rel).parent))
            mlflow.log_dict(config, "config.json")
            seen = Path(tmp) / seen_rows.ARTIFACT
            seen.parent.mkdir()
            seen.write_bytes(_seen_rows(ctx, model))
            mlflow.log_artifact(str(seen), artifact_path=str(Path(seen_rows.ARTIFACT).parent))
            mlflow.sklearn.log_model(
                sk_model=model, name="model", signature=signature,
                input_example=pd.DataFrame(example), pip_requirements=requirements,
                code_paths=[str(code)], serialization_format="pickle", tags=SOURCE_TAGS,
            )
            mlflow.set_tag("govpipe.logged", "true")  # the last step: the run is complete
            return run.info.run_id


def _seen_rows(ctx: Context, model) -> bytes:
    import pandas as pd

    train = pd.read_parquet(ctx.input(SPLIT["train"]))
    return seen_rows.encode(train, [*model.input_columns, ctx.params.data.target.column])


def _version(dist: str) -> str:
    return version(dist)


def _logged_run(reg, ctx: Context, gov: dict, model_path: Path, model_sha: str,
                tags: dict) -> str:
    """The run holding this model: one logged earlier (a registration that died after
    logging), or a new one."""

    cfg = ctx.params.registry
    exp_id = reg.experiment_id(cfg.experiment, cfg.artifact_location)
    previous = reg.run_by_sha(exp_id, model_sha)
    if previous is not None and previous.data.tags.get("govpipe.logged") == "true":
        log.info("completing the registration of run %s (logged earlier)",
                 previous.info.run_id)
        return previous.info.run_id
    if previous is not None:  # died while logging: leave it marked, start afresh
        reg.call("close an incomplete run", reg.client.set_terminated, previous.info.run_id,
                 "FAILED")
    model = load(model_path, expected_sha256=model_sha)
    perf = json.loads(ctx.input(PERFORMANCE).read_text(encoding="utf-8"))
    fair = json.loads(ctx.input(FAIRNESS).read_text(encoding="utf-8"))
    scrub = Scrubber.from_config(ctx.params.privacy).scrub_obj
    # The config governance judged (params_hash matched this run's): the config that made
    # the model, not whatever a standalone run composed.
    config = scrub({**gov["config"], "registry": cfg.model_dump(mode="json")})
    started = time.perf_counter()
    try:  # not retried as a whole: a retry would log a second run
        run_id = _log_run(reg, exp_id, ctx, model, tags, scrub(mlflow_payload.params(config)),
                          mlflow_payload.metrics(perf, fair), config)
    except Exception as e:
        where = component(str(e))
        raise RegistryError(
            f"logging the run to {redact(reg.uri)} failed ({where + '; ' if where else ''}"
            f"{type(e).__name__}: "
            f"{str(e).splitlines()[0][:300] if str(e) else ''}); nothing was registered and "
            "no alias moved; rerun to complete"
        ) from None
    log.info("timing: logged the run in %.2f s", time.perf_counter() - started)
    return run_id


def _ensure_model(reg, name: str) -> None:
    try:
        reg.call("look up the registered model", reg.client.get_registered_model, name)
    except RegistryError as e:
        if e.code != "RESOURCE_DOES_NOT_EXIST":
            raise
        try:
            reg.call("create the registered model", reg.client.create_registered_model, name)
        except RegistryError as again:
            if again.code != "RESOURCE_ALREADY_EXISTS":  # a concurrent run created it: fine
                raise


def _set_tags(reg, name: str, version, tags: dict, refresh: dict) -> None:
    """Fill in lineage tags a cut-short registration lacks (an existing version keeps the
    lineage it was registered with) and refresh the judgement tags."""
    for k, v in {**{k: v for k, v in tags.items() if k not in version.tags}, **refresh}.items():
        if version.tags.get(k) != v:
            reg.call("tag the model version", reg.client.set_model_version_tag, name,
                     version.version, k, v)
    for k in version.tags:  # gates the current policy no longer has
        if k.startswith("gate.") and k not in refresh:
            reg.call("drop a stale gate tag", reg.client.delete_model_version_tag, name,
                     version.version, k)


def run(ctx: Context) -> None:
    cfg = ctx.params.registry
    validate_names(cfg.model_name, cfg.champion_alias, cfg.challenger_alias)
    # Register attests, not governance: governance's outputs are DVC-cached and byte-identical
    # across runs and clones, a statement with a commit, a version and a time cannot be; and
    # the verdict worth signing is the one re-derived here (`decide`). The key is loaded before
    # anything touches the registry: a bad key registers nothing.
    signing_key = keys.signing_key()
    model_path = ctx.input(MODEL)
    if not model_path.exists():
        raise Refused(f"{MODEL} is missing: run the train stage first")
    model_sha = file_sha256(model_path)
    gov = read_governance(ctx)
    check_judged(ctx, gov, model_sha)
    scan_uploads(ctx, gov)
    decision = decide(ctx, gov)
    tags, judgement = _tags(ctx, gov, decision, model_sha)
    if not decision.register:  # REJECTED under block: an outcome, kept by DVC, not registered
        ctx.outputs.write_json(ATTESTATION, attestations.envelope(
            cfg.model_name, None, signing_key, tags, decision))  # the statement of why
        _write_outputs(ctx, decision, None, model_sha, {}, None)
        return
    _check_clean(cfg)

    with store_lock(cfg.tracking_uri):
        reg = Registry(cfg.tracking_uri, retries=cfg.retries, backoff=cfg.backoff_seconds,
                       timeout=cfg.timeout_seconds)
        reg.ping()  # fail fast: nothing is written to an unreachable registry
        version, reused = _version_of(reg, ctx, gov, model_path, model_sha, tags, judgement)
        _fault("register")
        _complete_tags(reg, cfg.model_name, version, tags, judgement)
        attestations.attest(reg, cfg.model_name, version, signing_key, tags, decision,
                            ctx.outputs.path(ATTESTATION))
        contest = _contest(reg, ctx, version, tags) if decision.eligible else None
        champion = reg.alias_version(cfg.model_name, cfg.champion_alias)
        if champion != str(version.version):
            reg.call("set the challenger alias", reg.client.set_registered_model_alias,
                     cfg.model_name, cfg.challenger_alias, version.version)
        aliases = reg.versions_by_alias(cfg.model_name)
    _write_outputs(ctx, decision, {"version": version, "reused": reused}, model_sha, aliases,
                   contest)


def _check_clean(cfg) -> None:
    state = lineage.git_state(Path.cwd())
    if state["git_dirty"] and not cfg.allow_dirty:
        raise Refused(
            "code or config differ from git commit "
            f"{state['git_commit'][:12]} ({', '.join(state['dirty_paths'][:8]) or 'unknown'}): "
            "commit them first, so the registered model can be traced to its code, or set "
            "registry.allow_dirty=true (the version is then tagged git_dirty=true)"
        )


def _version_of(reg, ctx: Context, gov: dict, model_path: Path, model_sha: str, tags: dict,
                judgement: dict) -> tuple[Any, bool]:
    """(the registered version of this model, whether it existed already): one version per
    model sha256; a new one is logged, then registered unpromoted."""
    cfg = ctx.params.registry
    version = reg.version_by_sha(cfg.model_name, model_sha)
    if version is not None:
        return version, True
    run_id = _logged_run(reg, ctx, gov, model_path, model_sha, tags)
    _fault("log")
    source, model_id = reg.logged_model(run_id)
    tags["promoted"] = "false"
    _ensure_model(reg, cfg.model_name)
    return reg.create_version_once(cfg.model_name, model_sha, source, run_id,
                                   {**tags, **judgement}, model_id), False


def _complete_tags(reg, name: str, version, tags: dict, judgement: dict) -> None:
    if ARTIFACT_SHA_TAG not in version.tags:
        # Hashed as the server will download it, after registering: MLflow writes a file
        # (registered_model_meta) into the model's artefacts when a version is created.
        tags[ARTIFACT_SHA_TAG] = reg.artifact_digest(f"models:/{name}/{version.version}")
    _set_tags(reg, name, version, tags, judgement)


# -- the promotion policy ------------------------------------------------------------------------
def _contest(reg, ctx: Context, version, tags: dict) -> dict:
    """Compare this candidate with its round's anchor, record the comparison on it, then make
    the round's best candidate the champion (re-checked once the alias moved: see `settle`)."""

    p, cfg = ctx.params, ctx.params.registry
    round_id = tags["git_commit"]
    current = reg.alias_version(cfg.model_name, cfg.champion_alias)
    moves = champions.history(reg, cfg.model_name)
    anchor = champions.anchor(moves, current, round_id)
    anchor_tag = champions.anchor_tag(moves, anchor)
    split_sha = file_sha256(ctx.input(SPLIT[p.governance.split]))
    own = _own_figures(ctx)
    candidate = promotion.figures(cfg.promotion, own["performance"], own["fairness"],
                                  _breakdown_keys(p))
    started = time.perf_counter()
    evidence: dict = {"rescored": False}
    if anchor is None:
        comparison = promotion.compare(cfg.promotion, candidate, None)
    else:
        try:
            candidate, champion, evidence = _on_same_rows(reg, ctx, anchor, split_sha,
                                                          candidate)
            comparison = promotion.compare(cfg.promotion, candidate, champion)
        except _Unscorable as e:  # fail closed: no comparison, no promotion
            comparison = promotion.compare(cfg.promotion, candidate, None)
            comparison.update(passed=False, margin=None, reasons=[str(e)])
    comparison.update(anchor_version=anchor, split=p.governance.split, **evidence,
                      seconds=round(time.perf_counter() - started, 3))
    record = {
        champions.ROUND_TAG: round_id, champions.ANCHOR_TAG: anchor_tag,
        champions.PASSED_TAG: str(comparison["passed"]).lower(),
        champions.MARGIN_TAG: "" if comparison["margin"] is None else str(comparison["margin"]),
        champions.COMPARISON_TAG: _tag_json(comparison),
        champions.SPLIT_TAG: split_sha,
        champions.FIGURES_TAG: json.dumps(own, sort_keys=True)[:4900],
    }
    for k, v in record.items():
        reg.call("record the comparison", reg.client.set_model_version_tag, cfg.model_name,
                 version.version, k, v)
    moved = settle(reg, cfg, round_id, anchor, anchor_tag)
    comparison["champion_after"] = reg.alias_version(cfg.model_name, cfg.champion_alias)
    comparison["moves"] = moved
    md, html = promotion.addendum(comparison, cfg.model_name, str(version.version))
    for text, name in ((md, "model_card_promotion.md"), (html, "model_card_promotion.html")):
        reg.call("upload the promotion addendum", reg.client.log_text, version.run_id, text,
                 f"reports/{name}")
    log.info("promotion policy: %s vs anchor %s: %s", f"version {version.version}",
             anchor or "(none)", "; ".join(comparison["reasons"]))
    return comparison


def _tag_json(comparison: dict) -> str:
    """The comparison as one tag value (MLflow caps them at 5,000 characters): the outcome and
    the first reasons if all of it does not fit (registration.json keeps it whole), never a
    cut-off JSON text."""
    text = json.dumps(comparison, sort_keys=True)
    if len(text) > 4900:
        keep = ("passed", "margin", "anchor_version", "rescored", "rows", "rows_seen_by_anchor",
                "split")
        text = json.dumps({**{k: comparison.get(k) for k in keep}, "truncated": True,
                           "reasons": [r[:300] for r in comparison["reasons"][:5]]},
                          sort_keys=True)
    return text


def settle(reg, cfg, round_id: str, anchor: str | None, anchor_tag: str) -> list[dict]:
    """Point the champion at the best of the round's passing candidates, and check again after
    moving it: a registration on another machine (a tracking server shared by several) may
    have recorded a better candidate in between. Every registration ends with this check, so
    the last one to finish leaves the round's best, whoever finishes last."""

    moves = []
    for _ in range(5):
        winner = promotion.best(champions.round_pool(reg, cfg.model_name, round_id,
                                                     anchor_tag))
        current = reg.alias_version(cfg.model_name, cfg.champion_alias)
        if winner is None or winner["version"] == current:
            return moves
        why = (f"promotion policy: best of round {round_id[:12]} against anchor "
               f"{anchor or '(none)'}, margin {winner['margin']:+} on "
               f"{cfg.promotion.metric}")
        moves.append(champions.move(reg, cfg, winner["version"], by="policy",
                                    round_id=round_id, why=why))
    return moves


def _own_figures(ctx: Context) -> dict:
    split = ctx.params.governance.split
    perf = json.loads(ctx.input(PERFORMANCE).read_text(encoding="utf-8"))[split]
    fair = json.loads(ctx.input(FAIRNESS).read_text(encoding="utf-8"))[split]
    return {"performance": perf, "fairness": fair}


def _breakdown_keys(p) -> list[str]:
    attrs = list(p.data.sensitive)
    return attrs + ["*".join(c) for c in p.metrics.crossings(attrs)]


class _Unscorable(Exception):
    """The anchor champion cannot be scored on this candidate's split."""


def _on_same_rows(reg, ctx: Context, anchor: str, split_sha: str, candidate: dict):
    """(candidate figures, anchor figures, evidence) on the same evaluation rows.

    Same split as the anchor was judged on: both models' recorded figures. Another split: both
    models scored afresh, with the metrics stage's own evaluation, on the rows of this split
    the anchor never trained on (pipeline.evaluation.seen_rows)."""

    p, cfg = ctx.params, ctx.params.registry
    mv = reg.call("read the champion", reg.client.get_model_version, cfg.model_name, anchor)
    keys = _breakdown_keys(p)
    if mv.tags.get(champions.SPLIT_TAG) == split_sha and champions.FIGURES_TAG in mv.tags:
        recorded = json.loads(mv.tags[champions.FIGURES_TAG])
        return candidate, promotion.figures(cfg.promotion, recorded["performance"],
                                            recorded["fairness"], keys), {"rescored": False}
    import pandas as pd

    what = f"champion version {anchor} of '{cfg.model_name}'"
    try:
        champion = reg.load_verified(f"models:/{cfg.model_name}/{anchor}",
                                     mv.tags.get(ARTIFACT_SHA_TAG, ""), what)
        df = pd.read_parquet(ctx.input(SPLIT[p.governance.split]))
        with tempfile.TemporaryDirectory(prefix="govpipe-seen-") as tmp:
            seen = reg.download(f"runs:/{mv.run_id}/{seen_rows.ARTIFACT}", Path(tmp))
            mask, _ = seen_rows.unseen(df, seen.read_bytes())
    except (ModelRefused, RegistryError, KeyError, ValueError, OSError) as e:
        raise _Unscorable(f"{what} could not be scored on this candidate's split ({e}); not "
                          "promoted") from None
    rows = df[mask]
    if len(rows) < p.metrics.min_count:
        raise _Unscorable(f"only {len(rows)} rows of this split were unseen by {what}: too "
                          "few to compare on; not promoted")
    own = load(ctx.input(MODEL))
    champion_threshold = float(mv.tags.get("threshold", p.metrics.threshold))
    return (_figures_of(own, rows, ctx, p.metrics.threshold),
            _figures_of(champion, rows, ctx, champion_threshold),
            {"rescored": True, "rows": int(len(rows)), "rows_seen_by_anchor": int((~mask).sum())})


def _figures_of(model, rows, ctx: Context, threshold: float) -> dict:
    p = ctx.params
    s = score_split(model, rows, p.data, p.metrics, threshold=threshold, seed=p.seed, n_boot=0)
    return promotion.figures(p.registry.promotion, s.performance, summary(s.fairness),
                             _breakdown_keys(p))


def _write_outputs(ctx: Context, decision: Decision, registered: dict | None, model_sha: str,
                   aliases: dict, contest: dict | None) -> None:
    cfg = ctx.params.registry
    # Keys unlike governance.json's, so `dvc exp show` names each column once: this is the
    # verdict re-derived under the committed policy too, and what it means for the registry.
    ctx.outputs.write_json(PROMOTION, {
        "policy_verdict": decision.verdict, "policy_failed": ",".join(decision.failed),
        "eligible": int(decision.eligible), "registered": int(decision.register),
        "policy_overrides": decision.overrides,
    })
    version = registered["version"] if registered else None
    champion = aliases.get(cfg.champion_alias)
    promoted = version is not None and champion == str(version.version)
    ctx.outputs.write_json(REGISTRATION, {
        "model_name": cfg.model_name, "registered": registered is not None,
        "version": int(version.version) if version else None,
        "model_uri": f"models:/{cfg.model_name}/{version.version}" if version else None,
        "run_id": version.run_id if version else None,
        "promoted": promoted,
        "alias": (cfg.champion_alias if promoted else cfg.challenger_alias) if version else None,
        "verdict": decision.verdict, "failed_gates": decision.failed,
        "policy_overrides": decision.overrides, "reasons": decision.reasons,
        "comparison": contest, "model_sha256": model_sha,
        "tracking_uri": redact(cfg.tracking_uri),
        "already_registered": registered["reused"] if registered else None, "aliases": aliases,
    })
    if version is None:
        log.warning("not registered: REJECTED by governance (%s); nothing moved. "
                    "`python -m pipeline.verdict` fails on this.", "; ".join(decision.reasons))
        return
    log.info("%s version %s of '%s'%s", "reused" if registered["reused"] else "registered",
             version.version, cfg.model_name,
             f" (@{cfg.champion_alias})" if promoted else f" (@{cfg.challenger_alias})")


if __name__ == "__main__":
    main("register", PARAMS, OUTS, run)
