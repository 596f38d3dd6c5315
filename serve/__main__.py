"""`python -m serve [OVERRIDE ...]` or `python -m serve --params params.yaml`.

Overrides are Hydra's, on the same `conf/` the pipeline stages compose, e.g.

    python -m serve serve.port=8080 serve.workers_per_device=4 data=german

`--params FILE` serves a composed file instead (e.g. the DVC-tracked params.yaml). Either way
the whole config is validated before anything starts. Hydra's compose API is used rather than
`@hydra.main`: a long-running server needs no run directory, no log files and no chdir.

The server starts worker processes with the *spawn* method, which re-imports this module in
every worker: everything that starts the server stays under `if __name__ == "__main__"`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
EXIT_USER_ERROR = 2

log = logging.getLogger("serve")


def compose(overrides: list[str]) -> dict[str, Any]:
    from pipeline.runtime.runner import compose as compose_conf

    return compose_conf(overrides, "serve")


def load_params(path: Path) -> dict[str, Any]:
    import yaml

    from pipeline.runtime.errors import ConfigError

    if not path.is_file():
        raise ConfigError(f"{path}: not found")
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must be a mapping at the top level")
    return raw


def main(argv: list[str]) -> int:
    from pipeline.config import validate
    from pipeline.runtime.errors import PipelineError
    from serve import logsetup
    from serve.server import serve

    logsetup.configure("info")
    try:
        if argv[:1] == ["--params"]:
            if len(argv) != 2:
                raise SystemExit("usage: python -m serve --params FILE")
            raw = load_params(Path(argv[1]))
        else:
            raw = compose(argv)
        cfg = validate(raw)
        return serve(cfg)
    except PipelineError as e:
        log.error("serve failed: %s", e)
        return EXIT_USER_ERROR
    except Exception as e:  # hydra override errors and the like: no traceback, just the text
        if type(e).__module__.startswith(("hydra", "omegaconf")):
            log.error("serve failed: %s", e)
            return EXIT_USER_ERROR
        raise


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
