"""The governed-ML pipeline: six stages that DVC runs in order (see dvc.yaml).

    python -m pipeline.<stage> --dvc         # what dvc.yaml runs
    python -m pipeline.<stage> [OVERRIDES]   # standalone Hydra app

Modules, in the order data flows (a test keeps this map and the tree in step). Stage scripts
and user tools sit at the top, where `python -m pipeline.<name>` finds them; each helper package
is one concern, and a stage imports only the packages its `deps:` in dvc.yaml list.

    ingest.py         stage: raw files -> typed, validated, PII-handled Parquet + report
    split.py          stage: stratified train/val/test split
    train.py          stage: fit the model (and mitigator), save one GovernedModel
    metrics.py        stage: performance and fairness on val/test, DVC metrics and plots
    governance.py     stage: gates, verdict, model card
    register.py       stage: re-derive the verdict, log to MLflow, register, let the
                      promotion policy pick the champion
    scaffold.py       tool: draft a dataset's conf/data/<name>.yaml from its data file
    compose.py        tool: write params.yaml from conf/
    exp_show.py       tool: experiments side by side in 120 columns (make exp-show)
    verdict.py        tool: exit 1 unless the workspace's model may become champion (CI)
    report.py         tool: the pull-request report against a base revision (CI comment)
    champion.py       tool: print the registry's champion and the history of its moves
    promote.py        tool: human oversight: promote a VALIDATED version, roll back
    attest.py         tool: make a signing key pair, verify a version's signed attestation
    monitor.py        tool: live fairness, drift and a verdict over the server's audit log
    model.py          GovernedModel, the artefact; stays here because pickles name
                      `pipeline.model.GovernedModel` and MLflow ships this one file with them
    loaders.py        model sources for the server (`_target_: pipeline.loaders.…` in
                      conf/serve/source/): a config-facing name, so it stays put like model.py;
                      it lives in pipeline because it reads what register wrote, and serve/
                      only consumes it
    runtime/          what every stage runs on
      runner.py       `--dvc` / Hydra entry point, the params view a stage may read
      outputs.py      atomic outputs, deterministic JSON
      paths.py        where each stage writes
      logs.py         one logging setup, every record PII-scrubbed
      errors.py       errors a user can act on (exit 2, no traceback)
      hashing.py      sha256 of a file or a tree (the one implementation)
      targets.py      `_target_` -> object via hydra.utils.instantiate, errors as ConfigError
      sweeps.py       `+resume=true` (a rerun runs only unfinished jobs); the Ray launcher's
                      work (its class is hydra_plugins/govpipe_launchers.py)
      lazy.py         lazy package re-exports (fairness, privacy)
    config/           pydantic models for every section of the composed config
      load.py         raw mapping -> validated Config, errors naming the key path
      base.py         shared strictness (unknown keys are errors)
      root.py         the whole Config
      dataset.py      data: files, columns, target, sensitive attributes, PII
      split.py        split
      model.py        model, mitigation, metrics
      governance.py   governance gates and model card text
      privacy.py      privacy: detector set, custom rules, plug-ins
      registry.py     registry
      serve.py        serve (and serve.audit, the audit log)
      monitor.py      monitor
    dataset/          raw files -> typed frame (ingest)
      read.py         read a dataset's files
      rows.py         typing and row rules
      sensitive.py    derived sensitive attributes
      profile.py      the ingest report's counts and ranges
      infer.py        the scaffold's inference: types, ranges, PII, sensitive, leakage
    modelling/        the unfitted model (train)
      estimators.py   preprocessing + configured estimator
    evaluation/       performance of scores (metrics, register)
      names.py        performance metric names and directions (no heavy imports)
      performance.py  threshold/ranking metrics, bootstrap CIs, plot data
      split_scores.py one model on one split, as the metrics stage scores it
      seen_rows.py    hashes of the rows a model trained on (fair comparisons)
    fairness/         group fairness (metrics); see its own map
      names.py        built-in metric names (no heavy imports: config needs them)
      groups.py       per-group stats, exclusion, intersections
      disparity.py    between-group metrics
      impact.py       impact ratios (the one formula: fairness report and model card audit)
      catalog.py      metrics by name, `_target_` plug-ins
      bootstrap.py    percentile-bootstrap intervals
      report.py       the fairness report
      _inputs.py      shared input checks
    privacy/          PII detection and scrubbing (every stage, governance, serve)
      detectors.py    built-in detectors
      checksums.py    Luhn, mod-97, SSN rules
      findings.py     result records (never the value)
      scrubber.py     Scrubber: scrub, scan, scan_file
      logging_filter.py  the log filter
      columns.py      column policies at ingest (drop, hash, year)
      evaluate.py     precision/recall against a labelled corpus
    audit/            the judgement and its documents (governance, register), and the
                      server's prediction audit log
      gates.py        criteria against metrics, the verdict
      policy.py       the policy committed in conf/
      rederive.py     the verdict derived again from the evidence (register, verdict)
      promotion.py    the promotion policy: candidate against champion, a round's best
      model_card.py   the model card, in the sections of Mitchell et al.
      card_words.py   the favourable label, and each rate, in plain words
      ll144.py        the NYC Local Law 144 bias audit from per-row scores
      annex_iv.py     the card's map to the EU AI Act's Annex IV headings
      document.py     one document -> Markdown and HTML
      charts.py       inline SVG
      attestation.py  the in-toto statement of a judgement and its DSSE envelope (Ed25519)
      keys.py         signing and public keys: from the environment, never the repo; key ids
      chain.py        the prediction audit log: hash-chained segments, writer, reader, verify
      __main__.py     `python -m pipeline.audit verify DIR`
    monitoring/       the monitor's parts (monitor)
      logframe.py     the verified log as predictions with their outcomes
      live.py         one window judged like the test split: fairness, gates, verdict
      drift.py        PSI and KS against the training data
      render.py       the HTML report
    tracking/         the MLflow side (register, champion, loaders)
      lineage.py      git state, data and params hashes
      payload.py      params, metrics, tags as MLflow accepts them
      client.py       tracking/registry calls with retries, aliases, the champion
      champions.py    champion moves, their history, rounds and anchors
      settings.py     the registry config for the user tools (params.yaml + overrides)
      attestations.py a version's attestation: uploaded and tagged, fetched and checked
      monitoring.py   the monitor's verdict as tags on the champion version
      stack.py        `make stack`: PostgreSQL + S3 endpoint + mlflow server on 127.0.0.1

Heavy third-party packages (pandas, pyarrow, pandera, scikit-learn, scipy, fairlearn, mlflow,
matplotlib, Hydra/OmegaConf/DVC where only composing needs them, and the optional extras'
boto3 and psycopg2) are imported inside the
functions that use them, so validating a config or a failing stage costs no second of imports;
everything else (stdlib, numpy, yaml, pydantic, internal modules) is imported at the top of the
file, unless a comment on the line above the import says why not (tests/test_layout.py).
"""

import os

# One OpenMP/BLAS thread per process unless the environment says otherwise. scikit-learn's
# histogram GBM and BLAS add in an order that depends on the thread count, so the same inputs
# and seed give the same bytes on every machine only at a fixed count (tests/test_launchers.py
# compares launchers at 1); and on a shared 2-core machine two threads per fit measured 33-182 s
# against about 2 s with one (bench/launcher_sweep.py, 2026-12-01). Set here, in the package's
# first module, because BLAS and OpenMP read these once, when numpy or scikit-learn load.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
