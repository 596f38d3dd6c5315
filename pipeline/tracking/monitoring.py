"""Closing the loop: the monitor's verdict as tags on the champion version in the registry
(`monitor.tag_registry: true`), shown by `make champion` with the version's other tags.

Only the champion whose `model_sha256` tag is the judged model's is tagged: a verdict on one
model's traffic never lands on another version. Tags: `<key>` = OK | ALERT |
INSUFFICIENT_EVIDENCE, `<key>_reasons` (scrubbed, at most 5,000 characters, MLflow's tag
limit), `<key>_at` (the report's end of range). Serving is never suspended by this: the
server keeps serving the champion (README: Monitoring, "Closing the loop").
"""

from __future__ import annotations

from typing import Any

from pipeline.privacy import scrub
from pipeline.runtime.errors import DataError
from pipeline.tracking.client import Registry

MAX_TAG = 5000


def tag_champion(registry: Any, key: str, model_sha256: str, verdict: str,
                 reasons: list[str], until: str) -> str:
    """Tag the champion; its version. RegistryError when the registry is unreachable,
    DataError when the champion is another model."""

    reg = Registry(registry.tracking_uri, retries=registry.retries,
                   backoff=registry.backoff_seconds, timeout=registry.timeout_seconds)
    try:
        info = reg.champion(registry.model_name, registry.champion_alias)
        if info["tags"].get("model_sha256") != model_sha256:
            raise DataError(
                f"the champion ({registry.model_name} version {info['version']}) is not the "
                f"monitored model {model_sha256[:12]}; registry not tagged")
        text = scrub("; ".join(reasons))[:MAX_TAG]
        for k, v in ((key, verdict), (f"{key}_reasons", text or "-"), (f"{key}_at", until)):
            reg.call(f"tag version {info['version']}", reg.client.set_model_version_tag,
                     registry.model_name, info["version"], k, v)
        return info["version"]
    finally:
        reg.close()
