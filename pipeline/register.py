"""register: log the governed model to MLflow with full lineage, register it, move aliases.

    dvc repro register
    python -m pipeline.register            # standalone: same checks, registry from config

Re-derives, never trusts. It refuses (exit 2) unless:
- reports/governance.json judged this model, these params, and every file it uploads, byte
  for byte (an edited metric, card or plot is stale);
- the verdict follows from the judged metrics and gates (an edited verdict is refused);
- its own privacy scan of every upload finds nothing.
Then the verdict is derived again under the policy committed in conf/ (pipeline.audit.policy): only
a model VALIDATED under both, judged with no policy override, becomes `champion`. A model that
is VALIDATED under overridden policy, or REJECTED under `governance.enforcement=warn`, is
registered as `challenger` only; REJECTED under `block`, a hard block or a privacy finding is
never registered.

One version per model sha256, under any concurrency (a file lock on the embedded store; a
tracking server gets create-then-deduplicate). A registration that died half-way is completed
by the next run. DVC never restores this stage from its run cache (its output is `persist`):
reports/registration.json always says what the last run did to the registry, and
metrics/promotion.json (DVC-tracked) what follows from the inputs alone.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.audit import keys, policy
from pipeline.runtime.errors import PipelineError
from pipeline.runtime.hashing import file_sha256
from pipeline.runtime.paths import (
    ATTESTATION,
    FAIRNESS,
    FAIRNESS_REPORT,
    GOVERNANCE_REPORT,
    MODEL,
    MODEL_CARD_HTML,
    MODEL_CARD_MD,
    PERFORMANCE,
    PROMOTION,
    REGISTRATION,
    UPLOADED_REPORTS,
)
from pipeline.runtime.runner import Context, main
from pipeline.tracking import lineage

log = logging.getLogger("pipeline.register")

OUTS = (PROMOTION, REGISTRATION, ATTESTATION)
UNTRACKED_OUTS = (REGISTRATION, ATTESTATION)  # not DVC outputs: see the module docstring
PARAMS = ("data", "split", "model", "mitigation", "metrics", "governance", "privacy", "registry",
          "seed")
# It re-hashes the judged sections against governance's params_hash and logs the config as
# MLflow params, so it reads nearly everything: params.yaml is one file dep in dvc.yaml.
PARAMS_FILE = True
JUDGED_FILES = (*UPLOADED_REPORTS, MODEL_CARD_MD, MODEL_CARD_HTML)  # hashed by governance
UPLOADS = (*JUDGED_FILES, GOVERNANCE_REPORT)
FAULT_ENV = "GOVPIPE_FAULT_AFTER"  # test hook: "log" or "register" simulates a crash there
# What MLflow would record from the process (the script's absolute path, i.e. the checkout
# path, which can hold a user name or an e-mail address): fixed values instead.
SOURCE_TAGS = {"mlflow.source.name": "pipeline.register", "mlflow.source.type": "LOCAL"}


class Refused(PipelineError):
    """Registration refused: the message says why and what to do."""


@dataclass(frozen=True)
class Decision:
    verdict: str  # VALIDATED only if VALIDATED as judged and under the committed policy
    promote: bool
    overrides: list[str]  # policy keys the judged config departs from
    gates: list[Any]  # GateResults under the committed policy
    reasons: list[str]


def _fault(step: str) -> None:
    if os.environ.get(FAULT_ENV) == step:
        raise RuntimeError(f"injected fault after '{step}' ({FAULT_ENV})")


# -- what governance judged ----------------------------------------------------------------------
def read_governance(ctx: Context) -> dict:
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


def check_judged(ctx: Context, gov: dict, model_sha: str) -> None:
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


def _changed(judged: dict, ctx: Context) -> list[str]:
    now = lineage.judged_sections(ctx.params)
    keys = [k for k in lineage.JUDGED_SECTIONS if judged.get(k) != now.get(k)]
    return keys or ["sections differ only in scrubbed values"]


def scan_uploads(ctx: Context) -> None:
    """Register's own privacy scan of everything it uploads (governance's is not trusted)."""
    from pipeline.privacy import Scrubber

    scrubber = Scrubber.from_config(ctx.params.privacy)
    found = []
    for rel in UPLOADS:
        found += [f"{rel}:{f.line}:{f.column} {f.entity}"
                  for f in scrubber.scan_file(ctx.input(rel))]
    if found:
        raise Refused(f"personal data in files to upload ({'; '.join(found[:10])}); "
                      "never registered")


# -- the verdict, derived again ------------------------------------------------------------------
def decide(ctx: Context, gov: dict) -> Decision:
    from pipeline.audit import gates
    from pipeline.config.governance import GovernanceSpec

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
    overrides = policy.overrides(policy.of(_policy_view(p)), committed)
    under_policy = gates.judge(GovernanceSpec.model_validate(committed["governance"]),
                               fairness, performance)
    policy_verdict, reasons = gates.verdict(under_policy, findings)
    hard = sorted({g.id for g in (*judged, *under_policy) if g.hard and not g.passed})
    if findings or hard:
        raise Refused(f"model is REJECTED with hard blocks {hard} or personal data found "
                      f"({findings} finding(s)); never registered")
    final = "VALIDATED" if verdict == policy_verdict == "VALIDATED" else "REJECTED"
    if final == "REJECTED":
        reasons = reasons or ["REJECTED under this run's overridden gates"]
        if p.governance.enforcement == "block":
            raise Refused(f"model is REJECTED by governance ({'; '.join(reasons)}); not "
                          "registered. governance.enforcement=warn registers it unpromoted.")
        log.warning("REJECTED model registered under governance.enforcement=warn: %s",
                    "; ".join(reasons))
    if overrides:
        log.warning("judged under overridden policy (%s): registered as %s at most",
                    ", ".join(overrides), p.registry.challenger_alias)
    return Decision(final, final == "VALIDATED" and not overrides, overrides, under_policy,
                    reasons)


def _policy_view(p: Any) -> dict:
    return {"governance": p.governance.model_dump(mode="json"),
            "metrics": p.metrics.model_dump(mode="json"),
            "registry": p.registry.model_dump(mode="json")}


# -- the MLflow side -----------------------------------------------------------------------------
def _tags(ctx: Context, gov: dict, decision: Decision, model_sha: str) -> tuple[dict, dict]:
    """(lineage tags, set once per version; judgement tags, refreshed on every run)."""
    from pipeline.privacy import Scrubber
    from pipeline.tracking import payload as mlflow_payload
    from pipeline.tracking.client import SHA_TAG

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

    from pipeline.tracking import payload as mlflow_payload

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
            mlflow.sklearn.log_model(
                sk_model=model, name="model", signature=signature,
                input_example=pd.DataFrame(example), pip_requirements=requirements,
                code_paths=[str(code)], serialization_format="pickle", tags=SOURCE_TAGS,
            )
            mlflow.set_tag("govpipe.logged", "true")  # the last step: the run is complete
            return run.info.run_id


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


def _logged_run(reg, ctx: Context, gov: dict, model_path: Path, model_sha: str,
                tags: dict) -> str:
    """The run holding this model: one logged earlier (a registration that died after
    logging), or a new one."""
    from pipeline.model import load
    from pipeline.privacy import Scrubber
    from pipeline.tracking import payload as mlflow_payload
    from pipeline.tracking.client import RegistryError, redact

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
        raise RegistryError(
            f"logging the run to {redact(reg.uri)} failed ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:300] if str(e) else ''}); nothing was registered and "
            "no alias moved; rerun to complete"
        ) from None
    log.info("timing: logged the run in %.2f s", time.perf_counter() - started)
    return run_id


def _ensure_model(reg, name: str) -> None:
    from pipeline.tracking.client import RegistryError

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
    from pipeline.tracking import attestations
    from pipeline.tracking.client import Registry, store_lock, validate_names

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
    scan_uploads(ctx)
    decision = decide(ctx, gov)
    _check_clean(cfg)
    tags, judgement = _tags(ctx, gov, decision, model_sha)

    with store_lock(cfg.tracking_uri):
        reg = Registry(cfg.tracking_uri, retries=cfg.retries, backoff=cfg.backoff_seconds,
                       timeout=cfg.timeout_seconds)
        reg.ping()  # fail fast: nothing is written to an unreachable registry
        version, reused = _version_of(reg, ctx, gov, model_path, model_sha, tags, judgement)
        _fault("register")
        _complete_tags(reg, cfg.model_name, version, tags, judgement, decision.promote)
        attestations.attest(reg, cfg.model_name, version, signing_key, tags, decision,
                            ctx.outputs.path(ATTESTATION))
        alias = _move_aliases(reg, cfg, version, decision.promote)
        aliases = reg.versions_by_alias(cfg.model_name)
    _write_outputs(ctx, decision, version, model_sha, alias, reused, aliases)


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


def _complete_tags(reg, name: str, version, tags: dict, judgement: dict,
                   promote: bool) -> None:
    from pipeline.tracking.client import ARTIFACT_SHA_TAG

    if ARTIFACT_SHA_TAG not in version.tags:
        # Hashed as the server will download it, after registering: MLflow writes a file
        # (registered_model_meta) into the model's artefacts when a version is created.
        tags[ARTIFACT_SHA_TAG] = reg.artifact_digest(f"models:/{name}/{version.version}")
    _set_tags(reg, name, version, tags, {**judgement, **({"promoted": "true"} if promote else {})})


def _move_aliases(reg, cfg, version, promote: bool) -> str:
    """Champion (clearing a challenger alias on the same version) or challenger."""
    alias = cfg.champion_alias if promote else cfg.challenger_alias
    reg.call("set the alias", reg.client.set_registered_model_alias, cfg.model_name,
             alias, version.version)
    if promote and \
            reg.alias_version(cfg.model_name, cfg.challenger_alias) == str(version.version):
        reg.call("clear the challenger alias", reg.client.delete_registered_model_alias,
                 cfg.model_name, cfg.challenger_alias)
    return alias


def _write_outputs(ctx: Context, decision: Decision, version, model_sha: str, alias: str,
                   reused: bool, aliases: dict) -> None:
    from pipeline.tracking.client import redact

    cfg = ctx.params.registry
    ctx.outputs.write_json(PROMOTION, {
        "verdict": decision.verdict, "eligible": int(decision.verdict == "VALIDATED"
                                                     and not decision.overrides),
        "policy_overrides": decision.overrides,
    })
    ctx.outputs.write_json(REGISTRATION, {
        "model_name": cfg.model_name, "version": int(version.version),
        "model_uri": f"models:/{cfg.model_name}/{version.version}", "run_id": version.run_id,
        "promoted": decision.promote, "alias": alias, "verdict": decision.verdict,
        "policy_overrides": decision.overrides, "reasons": decision.reasons,
        "model_sha256": model_sha, "tracking_uri": redact(cfg.tracking_uri),
        "already_registered": reused, "aliases": aliases,
    })
    log.info("%s version %s of '%s' (%s)%s", "reused" if reused else "registered",
             version.version, cfg.model_name, alias, "" if decision.promote else ", not promoted")


if __name__ == "__main__":
    main("register", PARAMS, OUTS, run)
