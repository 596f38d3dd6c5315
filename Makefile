# Two commands on a fresh machine (needs python3 with venv and pip):
#   make run    set up .venv from uv.lock, pull the data, run the pipeline
#   make test   the same setup, then the test suite
SHELL := /bin/bash
VENV := .venv
UV_VERSION := 0.13.8
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)
# The S3 DVC remote, the production-like stack (README "Production") and the Ray and SLURM
# launchers are extras the test suite needs; `make EXTRAS= run` (or `uv sync --frozen`) gives
# the lean environment.
EXTRAS ?= --all-extras
# Keep experiment runs reproducible and quiet: no telemetry, no update checks.
export DVC_NO_ANALYTICS := 1
export MLFLOW_ENABLE_ASYNC_LOGGING := false

.PHONY: setup data run test params lint bench clean champion serve exp-show browser verdict \
	promote rollback keygen verify audit-verify monitor

# The stamp depends on the lock file, so a changed lock re-syncs the environment.
$(VENV)/.synced: uv.lock pyproject.toml
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(VENV)/bin/uv sync --frozen --compile-bytecode --python $(VENV)/bin/python $(EXTRAS)
	touch $@

setup: $(VENV)/.synced

data: setup
	dvc pull data.dvc

run: data
	dvc repro

test: data
	python -m pytest

params: setup
	python -m pipeline.compose

lint: setup
	ruff check pipeline serve tests bench

# Start the HTTP service for the registered champion (after `make run`).
serve: setup
	python -m serve $(SERVE_ARGS)

# `make champion data=german`: another dataset's registered model (composes conf/ for it).
champion: setup
	python -m pipeline.champion $(if $(data),data=$(data))

# Fail (exit 1, with the reasons) unless the workspace's model may become champion: for CI,
# after `dvc repro`, which itself succeeds on a REJECTED model (see README "Verdicts").
verdict: setup
	python -m pipeline.verdict

# Human oversight: `make promote VERSION=3 REASON="…"`, `make rollback REASON="…"`.
promote: setup
	python -m pipeline.promote "$(VERSION)" --reason "$(REASON)"

rollback: setup
	python -m pipeline.promote --rollback --reason "$(REASON)"

# Signed evidence (README): a key pair outside the repo; verify a registered version.
keygen: setup
	@test -n "$(DIR)" || (echo "usage: make keygen DIR=~/.config/govpipe" >&2; exit 2)
	python -m pipeline.attest keygen $(DIR)

verify: setup
	@test -n "$(VERSION)" -a -n "$(PUBLIC_KEY)" || (echo "usage: make verify VERSION=N PUBLIC_KEY=FILE" >&2; exit 2)
	python -m pipeline.attest verify $(VERSION) --public-key $(PUBLIC_KEY)

# The server's prediction audit log: verify the chain; judge live traffic (README: After
# deployment). MONITOR_ARGS e.g. "--since 2026-11-01 --fail-on-alert monitor.window_days=7".
AUDIT_DIR ?= audit
audit-verify: setup
	python -m pipeline.audit verify $(AUDIT_DIR)

monitor: setup
	python -m pipeline.monitor $(MONITOR_ARGS)

# Experiments side by side in 120 columns (pipeline/exp_show.py): name, dataset, model,
# mitigation, bal_acc, each sensitive attribute's disparate impact ratio, verdict, failing gates.
exp-show: setup
	python -m pipeline.exp_show $(EXP_SHOW_ARGS)

# Headless Chromium for the model-card rendering test (Debian package; needs root).
browser:
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

bench: data
	python bench/repro_noop.py
	python bench/pipeline_scale.py
	python bench/pipeline_vs_script.py
	python bench/sweep_queue.py
	python bench/register_timing.py
	python bench/scrub_throughput.py
	python bench/serve_load.py
	python bench/audit_overhead.py
	python bench/monitor_scale.py

clean:
	rm -rf outputs multirun .pytest_cache

# The pull-request report (README "CI for your repo"): verdict and gates, metrics, fairness and
# parameters against BASE, the selection-rate chart: reports/pr_report.md and .svg (git-ignored).
.PHONY: report
BASE ?= main
report: setup
	python -m pipeline.report --base "$(BASE)"

# -- Production-like stack (README "Production"): PostgreSQL + an S3 endpoint + mlflow server on
# 127.0.0.1 (throw-away; Debian's postgresql package), and two servers behind haproxy.
.PHONY: stack stack-down serve-cluster bench-stack
STACK_DIR ?= .stack

stack: setup
	python -m pipeline.tracking.stack up --dir $(STACK_DIR)

stack-down: setup
	python -m pipeline.tracking.stack down --dir $(STACK_DIR)

# `make serve-cluster SERVE_ARGS="registry=server"`: haproxy on :8000, instances on :8001/:8002.
serve-cluster: setup
	deploy/serve-cluster.sh $(SERVE_ARGS)

bench-stack: data
	python bench/stack_register.py
	python bench/serve_cluster.py
