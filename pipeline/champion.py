"""Print the current champion and the history of champion moves: `python -m pipeline.champion`
(or `make champion`).

    python -m pipeline.champion [data=NAME] [registry.tracking_uri=...] [--json]

Reads the registry settings from params.yaml (the composed config; or conf/ composed with a
group choice such as `data=german`, see pipeline.tracking.settings) and prints the champion's
model URI, version and tags, then every move of the champion alias (who or which policy moved
it, when, why); exits 1 if there is no champion yet, 2 for a bad setting.
"""

from __future__ import annotations

import json
import sys

from pipeline.runtime import logs
from pipeline.runtime.errors import ConfigError, PipelineError
from pipeline.runtime.runner import EXIT_USER_ERROR
from pipeline.tracking import champions
from pipeline.tracking.client import Registry
from pipeline.tracking.settings import load_config


def main(argv: list[str]) -> int:
    logs.setup()
    try:
        cfg = load_config(argv)[0].registry
    except ConfigError as e:
        print(f"champion: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    try:
        reg = Registry(cfg.tracking_uri, retries=cfg.retries, backoff=cfg.backoff_seconds,
                       timeout=cfg.timeout_seconds)
        moves = champions.history(reg, cfg.model_name)
        info = reg.champion(cfg.model_name, cfg.champion_alias)
    except PipelineError as e:
        print(f"no champion: {e}", file=sys.stderr)
        return 1
    if "--json" in argv:
        print(json.dumps({**info, "history": moves}, indent=2, sort_keys=True))
        return 0
    print(f"{info['name']}@{info['alias']} -> version {info['version']} ({info['uri']})")
    for k in sorted(info["tags"]):
        print(f"  {k}: {info['tags'][k]}")
    print(f"history ({len(moves)} move(s), oldest first):")
    for m in moves:
        print(f"  {m.get('at', '?')}  version {m.get('from') or '-'} -> {m.get('version')}  "
              f"by {m.get('by')}: {m.get('why', '')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
