"""Print the current champion: `python -m pipeline.champion` (or `make champion`).

    python -m pipeline.champion [registry.tracking_uri=...] [--json]

Reads the registry settings from params.yaml (the composed config) and prints the champion's
model URI, version and tags; exits 1 if there is no champion yet.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    import yaml

    from pipeline.config import validate
    from pipeline.runtime import logs
    from pipeline.runtime.errors import PipelineError
    from pipeline.tracking.client import Registry

    logs.setup()
    as_json = "--json" in argv
    raw = yaml.safe_load(Path("params.yaml").read_text(encoding="utf-8"))
    for arg in (a for a in argv if "=" in a):  # simple dotted overrides for the registry
        dotted, value = arg.split("=", 1)
        node = raw
        *path, last = dotted.split(".")
        for part in path:
            node = node[part]
        node[last] = value
    try:
        cfg = validate(raw).registry
        info = Registry(cfg.tracking_uri, retries=cfg.retries, backoff=cfg.backoff_seconds,
                        timeout=cfg.timeout_seconds).champion(cfg.model_name, cfg.champion_alias)
    except PipelineError as e:
        print(f"no champion: {e}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(info, indent=2, sort_keys=True))
    else:
        print(f"{info['name']}@{info['alias']} -> version {info['version']} ({info['uri']})")
        for k in sorted(info["tags"]):
            print(f"  {k}: {info['tags'][k]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
