"""Write params.yaml: the composition of conf/, exactly as DVC's Hydra integration writes it.

    python -m pipeline.compose [OVERRIDE ...]     # e.g. data=german

Uses DVC's own `compose_and_dump`, so `dvc exp run` and this command can never disagree.
"""

import sys
from pathlib import Path

import yaml

from pipeline.config.load import yaml_problem
from pipeline.runtime.runner import EXIT_USER_ERROR


def compose(output: Path, overrides: list[str]) -> None:
    from dvc.utils.hydra import compose_and_dump

    root = Path.cwd()
    compose_and_dump(output, str(root / "conf"), None, "config", str(root), overrides)


if __name__ == "__main__":
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        compose(Path("params.yaml"), sys.argv[1:])
    except (HydraException, OmegaConfBaseException) as e:
        # Hydra's message names the group and the options it knows; the traceback adds nothing.
        # A dataset is one file, conf/data/<name>.yaml (README, "Bringing your own dataset").
        print(f"params.yaml not written: {e}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except yaml.YAMLError as e:
        # A syntax error or a duplicate key in a conf/ file: Hydra's loader raises PyYAML's
        # error as is, and its marks name the file and line.
        print(f"params.yaml not written: invalid YAML: {yaml_problem(e)}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
