"""The server's fixed routes, named once (the gate, the connection limiter and the app all
need to know which is which)."""

from __future__ import annotations

# Liveness/readiness: answered even when the connection cap is reached, so an orchestrator
# never mistakes overload for death.
PROBE_PATHS = frozenset({"/livez", "/readyz", "/health", "/ping", "/v2/health/live",
                         "/v2/health/ready"})

# Reachable without the key: the probes, Prometheus, and the API description.
OPEN_PATHS = PROBE_PATHS | {"/metrics", "/openapi.json", "/docs"}

# Every fixed route (the prediction path is configurable and added by the server); anything
# else is a 404 from the gate.
FIXED_PATHS = OPEN_PATHS | {"/info", "/invocations", "/v2", "/feedback"}
