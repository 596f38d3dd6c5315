"""One logging setup for every stage (and the server).

Every record passes the PII-scrubbing filter (pipeline.privacy) on every handler, so a message
cannot reach a stream or file without it.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from pipeline.privacy import install_log_scrubbing

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

def _handler(h: logging.Handler) -> logging.Handler:
    h.setFormatter(logging.Formatter(FORMAT))
    return h


def setup(level: int = logging.INFO, logfile: Path | None = None) -> None:
    """Log to stderr (and to `logfile` if given), replacing any earlier configuration."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    root.addHandler(_handler(logging.StreamHandler(sys.stderr)))
    if logfile is not None:
        logfile.parent.mkdir(parents=True, exist_ok=True)
        root.addHandler(_handler(logging.FileHandler(logfile, encoding="utf-8")))
    root.setLevel(level)

    install_log_scrubbing()  # after the handlers exist: it attaches to each of them
    # Third-party chatter that would drown the stage's own messages.
    for noisy in ("matplotlib", "PIL", "numexpr", "urllib3", "git"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
