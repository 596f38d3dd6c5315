"""The HTTP inference service (LitServe 0.2.19); see serve/README.md.

    python -m serve [HYDRA OVERRIDES]        # or: python -m serve --params params.yaml

Modules, in request order:

    gate     ASGI middleware: API key, payload limit, metrics, JSON access log
    schema   request/response models derived from the dataset spec and the model's inputs
    http     /predict (validation -> prediction cache -> worker queue), /health, /metrics, /info
    loop     the workers' batching loop (greedy dynamic batching)
    api      the LitAPI run by each worker: one DataFrame and one predict call per batch,
             model hot-swap on a TTL
    state    what each worker serves, in shared memory
    server   the LitServer subclass: process layout, LitServe 0.2.19 fixes, SIGTERM handling
    metrics  Prometheus (multiprocess mode); logsetup: JSON logs through the PII scrubber
"""
