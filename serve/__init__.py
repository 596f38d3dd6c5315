"""The HTTP inference service (LitServe 0.2.19); see serve/README.md.

    python -m serve [HYDRA OVERRIDES]        # or: python -m serve --params params.yaml

Modules, in request order:

    edges    uvicorn's protocol with connection bounds: header size/count, read deadlines,
             idle timeout, a connection cap that still answers probes
    gate     ASGI middleware: API key, payload limit, body deadline, request id, access log
    schema   request/response models derived from the dataset spec and the model's inputs
    http     /predict (validation -> prediction cache -> worker queue), /livez, /readyz,
             /metrics, /info, the 422 format
    audit    the prediction audit log: buffered, one chained stream per HTTP process,
             written by a flusher thread off the request path (format: pipeline.audit.chain)
    feedback /feedback: outcomes for earlier request ids, appended to the audit log
    protocols  MLflow /invocations and Open Inference Protocol v2, on the same path
    loop     the workers' batching loop (greedy dynamic batching)
    api      the LitAPI run by each worker: one DataFrame and one predict call per batch,
             model hot-swap on a TTL
    state    what each worker serves, in shared memory
    transport  answers from workers to HTTP processes: framed messages over pipes
    server   the LitServer subclass: process layout, LitServe 0.2.19 fixes, its own run()
    supervise  signals, the watch on every child, parent-death, the dead-child policy
    metrics  Prometheus (multiprocess mode); logsetup: JSON logs through the PII scrubber
"""
