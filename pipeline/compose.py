"""Write params.yaml: the composition of conf/, exactly as DVC's Hydra integration writes it.

    python -m pipeline.compose [OVERRIDE ...]     # e.g. data=german

Uses DVC's own `compose_and_dump`, so `dvc exp run` and this command can never disagree.
"""

import sys
from pathlib import Path


def compose(output: Path, overrides: list[str]) -> None:
    from dvc.utils.hydra import compose_and_dump

    root = Path.cwd()
    compose_and_dump(output, str(root / "conf"), None, "config", str(root), overrides)


if __name__ == "__main__":
    compose(Path("params.yaml"), sys.argv[1:])
