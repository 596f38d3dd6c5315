"""register: log the governed model to MLflow with full lineage, register it, move aliases.

    dvc repro register
    python -m pipeline.register            # standalone: same checks, registry from config

Fails closed: refuses (exit 2) when reports/governance.json is missing, unreadable, REJECTED
(with governance.enforcement=block) or stale (judged another model or other metrics files).
Idempotent: a model whose sha256 is already registered gets no new version; a registration that
died half-way is completed on the next run. `champion` moves only to a VALIDATED version;
`challenger` marks the newest version that was not promoted.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.paths import (
    FAIRNESS,
    GOVERNANCE_REPORT,
    MODEL,
    MODEL_CARD_HTML,
    MODEL_CARD_MD,
    PERFORMANCE,
    REGISTRATION,
    UPLOADED_REPORTS,
)
from pipeline.stage import Context, main

log = logging.getLogger("pipeline.register")

OUTS = (REGISTRATION,)
PARAMS = ("data", "split", "model", "mitigation", "metrics", "governance", "privacy", "registry",
          "seed")
UPLOADS = (*UPLOADED_REPORTS, GOVERNANCE_REPORT, MODEL_CARD_MD, MODEL_CARD_HTML)
FAULT_ENV = "GOVPIPE_FAULT_AFTER"  # test hook: "log" or "register" simulates a crash there


class Refused(PipelineError):
    """Registration refused: the message says why and what to do."""


def _fault(step: str) -> None:
    if os.environ.get(FAULT_ENV) == step:
        raise RuntimeError(f"injected fault after '{step}' ({FAULT_ENV})")


def check_governance(ctx: Context, model_sha: str) -> dict:
    from pipeline.lineage import file_sha256

    path = ctx.input(GOVERNANCE_REPORT)
    if not path.exists():
        raise Refused(f"{GOVERNANCE_REPORT} is missing: run the governance stage first "
                      "(`dvc repro governance`)")
    try:
        gov = json.loads(path.read_text(encoding="utf-8"))
        verdict, judged = gov["verdict"], gov["identity"]["model_sha256"]
        hashes = gov["judged_sha256"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise Refused(f"{GOVERNANCE_REPORT} is unreadable ({type(e).__name__}: {e}); rerun "
                      "the governance stage") from None
    if judged != model_sha:
        raise Refused(f"{GOVERNANCE_REPORT} is stale: it judged model {judged[:12]}…, but "
                      f"{MODEL} is {model_sha[:12]}…; rerun the governance stage")
    for rel, sha in hashes.items():
        if file_sha256(ctx.input(rel)) != sha:
            raise Refused(f"{GOVERNANCE_REPORT} is stale: {rel} changed since it was judged")
    if verdict not in ("VALIDATED", "REJECTED"):
        raise Refused(f"{GOVERNANCE_REPORT}: unknown verdict {verdict!r}")
    return gov


def may_register(gov: dict, enforcement: str) -> bool:
    """True if promoted-or-not registration may go ahead; raises Refused otherwise."""
    if gov["verdict"] == "VALIDATED":
        return True
    reasons = "; ".join(gov.get("reasons", [])) or "see the report"
    if enforcement == "block":
        raise Refused(f"model is REJECTED by governance ({reasons}); not registered. "
                      "governance.enforcement=warn registers it unpromoted.")
    if gov.get("hard_blocks") or gov["privacy_scan"]["findings"]:
        raise Refused(f"model is REJECTED with hard blocks {gov.get('hard_blocks')} or "
                      f"personal data found ({gov['privacy_scan']['findings']}); never registered")
    log.warning("REJECTED model registered under governance.enforcement=warn: %s", reasons)
    return False


def _log_run(reg, exp_id: str, ctx: Context, model, spec, tags, params, metrics) -> str:
    import mlflow
    from mlflow.models import infer_signature

    from pipeline import mlflow_payload

    example = mlflow_payload.synthetic_example(spec, model.input_columns)
    import pandas as pd

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
        with mlflow.start_run(experiment_id=exp_id, tags=tags) as run:
            mlflow.log_params(params)
            mlflow.log_metrics(metrics)
            for rel in UPLOADS:
                mlflow.log_artifact(str(ctx.input(rel)), artifact_path=str(Path(rel).parent))
            mlflow.log_dict(json.loads(json.dumps(ctx_config(ctx))), "config.json")
            mlflow.sklearn.log_model(
                sk_model=model, name="model", signature=signature,
                input_example=pd.DataFrame(example), pip_requirements=requirements,
                code_paths=[str(code)], serialization_format="pickle",
            )
            mlflow.set_tag("govpipe.logged", "true")  # the last step: the run is complete
            return run.info.run_id


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


def ctx_config(ctx: Context) -> dict:
    from pipeline.privacy import Scrubber

    scrub = Scrubber.from_config(ctx.params.privacy)
    sections = {k: getattr(ctx.params, k) for k in PARAMS}
    raw = {k: (v.model_dump(mode="json") if hasattr(v, "model_dump") else v)
           for k, v in sections.items()}
    return scrub.scrub_obj(raw)


def run(ctx: Context) -> None:
    from pipeline import lineage, mlflow_payload
    from pipeline.model import load
    from pipeline.registry import SHA_TAG, Registry, RegistryError, redact, validate_names

    p = ctx.params
    cfg, spec = p.registry, p.data
    validate_names(cfg.model_name, cfg.champion_alias, cfg.challenger_alias)
    model_path = ctx.input(MODEL)
    if not model_path.exists():
        raise Refused(f"{MODEL} is missing: run the train stage first")
    model_sha = lineage.file_sha256(model_path)
    gov = check_governance(ctx, model_sha)
    promote = may_register(gov, p.governance.enforcement)
    missing = [rel for rel in UPLOADS if not ctx.input(rel).exists()]
    if missing:
        raise Refused(f"artefact file(s) to upload are missing: {missing}; rerun the pipeline")
    state = lineage.git_state(Path.cwd())
    if state["git_dirty"] and not cfg.allow_dirty:
        raise Refused(
            "code or config differ from git commit "
            f"{state['git_commit'][:12]} ({', '.join(state['dirty_paths'][:8]) or 'unknown'}): "
            "commit them first, so the registered model can be traced to its code, or set "
            "registry.allow_dirty=true (the version is then tagged git_dirty=true)"
        )

    reg = Registry(cfg.tracking_uri, retries=cfg.retries, backoff=cfg.backoff_seconds,
                   timeout=cfg.timeout_seconds)
    reg.ping()  # fail fast: nothing is written to an unreachable registry
    from pipeline.privacy import Scrubber

    scrub = Scrubber.from_config(p.privacy)
    identity = gov["identity"]
    tags = scrub.scrub_obj({
        SHA_TAG: model_sha, "verdict": gov["verdict"], "dataset": spec.name,
        "git_commit": state["git_commit"], "git_dirty": str(state["git_dirty"]).lower(),
        "data_hash": identity["data_hash"], "params_hash": identity["params_hash"],
        "model": identity["model"] or "", "mitigation": identity["mitigation"] or "",
        "threshold": str(p.metrics.threshold), "governance_enforcement": p.governance.enforcement,
        **({"dvc_exp_name": state["dvc_exp_name"]} if state["dvc_exp_name"] else {}),
        **({"dvc_exp_baseline": state["dvc_exp_baseline"]} if state["dvc_exp_baseline"] else {}),
        **mlflow_payload.gate_tags(gov),
    })

    version = reg.version_by_sha(cfg.model_name, model_sha)
    reused = version is not None
    if version is None:
        exp_id = reg.experiment_id(cfg.experiment, cfg.artifact_location)
        previous = reg.run_by_sha(exp_id, model_sha)
        if previous is not None and previous.data.tags.get("govpipe.logged") == "true":
            run_id = previous.info.run_id
            log.info("completing the registration of run %s (logged earlier)", run_id)
        else:
            if previous is not None:  # died while logging: leave it marked, start afresh
                reg.call("close an incomplete run", reg.client.set_terminated,
                         previous.info.run_id, "FAILED")
            model = load(model_path, expected_sha256=model_sha)
            perf = json.loads(ctx.input(PERFORMANCE).read_text())
            fair = json.loads(ctx.input(FAIRNESS).read_text())
            started = time.perf_counter()
            try:  # not retried as a whole: a retry would log a second run
                run_id = _log_run(reg, exp_id, ctx, model, spec, tags,
                                  scrub.scrub_obj(mlflow_payload.params(ctx_config(ctx))),
                                  mlflow_payload.metrics(perf, fair))
            except Exception as e:
                raise RegistryError(
                    f"logging the run to {redact(reg.uri)} failed ({type(e).__name__}: "
                    f"{str(e).splitlines()[0][:300] if str(e) else ''}); nothing was "
                    "registered and no alias moved; rerun to complete"
                ) from None
            log.info("timing: logged the run in %.2f s", time.perf_counter() - started)
        _fault("log")
        started = time.perf_counter()
        _ensure_model(reg, cfg.model_name)
        source, model_id = reg.logged_model(run_id)
        version = reg.call("register the model version", reg.client.create_model_version,
                           cfg.model_name, source, run_id=run_id, tags=tags, model_id=model_id)
    _fault("register")
    for k, v in tags.items():  # completes a version whose tagging was cut short; an existing
        if k not in version.tags:  # version keeps the lineage it was registered with
            reg.call("tag the model version", reg.client.set_model_version_tag,
                     cfg.model_name, version.version, k, v)
    if not reused:
        log.info("timing: registered the version in %.2f s", time.perf_counter() - started)
    alias = cfg.champion_alias if promote else cfg.challenger_alias
    reg.call("set the alias", reg.client.set_registered_model_alias, cfg.model_name, alias,
             version.version)
    if promote and reg.alias_version(cfg.model_name, cfg.challenger_alias) == version.version:
        reg.call("clear the challenger alias", reg.client.delete_registered_model_alias,
                 cfg.model_name, cfg.challenger_alias)
    ctx.outputs.write_json(REGISTRATION, {
        "model_name": cfg.model_name, "version": int(version.version),
        "model_uri": f"models:/{cfg.model_name}/{version.version}", "run_id": version.run_id,
        "promoted": promote, "alias": alias, "verdict": gov["verdict"],
        "model_sha256": model_sha, "tracking_uri": redact(cfg.tracking_uri),
        "already_registered": reused,
    })
    log.info("%s version %s of '%s' (%s)%s", "reused" if reused else "registered",
             version.version, cfg.model_name, alias, "" if promote else ", not promoted")


def _ensure_model(reg, name: str) -> None:
    from pipeline.registry import RegistryError

    try:
        reg.call("look up the registered model", reg.client.get_registered_model, name)
    except RegistryError as e:
        if e.code != "RESOURCE_DOES_NOT_EXIST":
            raise
        reg.call("create the registered model", reg.client.create_registered_model, name)


if __name__ == "__main__":
    main("register", PARAMS, OUTS, run)
