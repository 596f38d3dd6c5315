"""The monitor's parts on small synthetic logs: joining outcomes, refusing a broken log or a
log from another model, PSI, and the command-line errors. No processes."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.audit.chain import ChainWriter
from pipeline.monitor import _args, _windows
from pipeline.monitoring import drift, logframe
from pipeline.runtime.errors import ConfigError, DataError

SHA = "ab" * 32


def _pred(i: int, sha: str = SHA) -> dict:
    return {"kind": "prediction", "ts": 1000.0 + i, "request_id": f"r{i}", "index": 0,
            "model": {"name": "m", "version": sha[:12], "sha256": sha},
            "features": {"sex": "Male" if i % 2 else "Female", "age": 20 + i},
            "probability": 0.9 if i % 3 else 0.1, "label_id": int(bool(i % 3))}


def _outcome(i: int, y: int) -> dict:
    return {"kind": "outcome", "ts": 2000.0 + i, "request_id": f"r{i}", "index": 0,
            "label_id": y}


def _write(d, recs, stream="s1"):
    d.mkdir(exist_ok=True)
    w = ChainWriter(d, stream, rotate_bytes=10**6, rotate_seconds=3600)
    w.append(recs)
    w.close_file()


def test_outcomes_join_first_one_wins_and_duplicates_and_orphans_are_counted(tmp_path):
    _write(tmp_path, [_pred(i) for i in range(6)] + [_outcome(0, 1), _outcome(1, 0)])
    _write(tmp_path, [_outcome(0, 0), _outcome(9, 1), _pred(7, "cd" * 32)], "s2")
    lf = logframe.read(tmp_path, SHA)
    df = lf.predictions
    assert len(df) == 6 and lf.other_models == {"cd" * 32: 1}
    assert lf.duplicate_outcomes == 1 and lf.orphan_outcomes == 1
    assert df.loc[df["_request_id"] == "r0", "_y"].item() == 1  # the first outcome, not 0
    assert df["_y"].notna().sum() == 2


def test_a_broken_log_or_another_models_log_is_an_error(tmp_path):
    _write(tmp_path / "a", [_pred(i) for i in range(3)])
    with pytest.raises(DataError, match="holds no prediction of model cdcdcdcdcdcd"):
        logframe.read(tmp_path / "a", "cd" * 32)
    f = next((tmp_path / "a").glob("*.jsonl"))
    f.write_bytes(f.read_bytes().replace(b'"r1"', b'"r9"'))
    with pytest.raises(DataError, match="is broken: .* line 2: record hash mismatch"):
        logframe.read(tmp_path / "a", SHA)
    with pytest.raises(DataError, match="no such directory"):
        logframe.read(tmp_path / "missing", SHA)


def test_psi_is_zero_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=20_000)
    edges = drift.numeric_edges(ref, 10)
    same = drift.psi(drift._shares_numeric(ref, edges),
                     drift._shares_numeric(rng.normal(size=20_000), edges))
    moved = drift.psi(drift._shares_numeric(ref, edges),
                      drift._shares_numeric(rng.normal(1.0, size=20_000), edges))
    assert same < 0.01 and moved > 0.25


def test_command_line_errors_name_the_option():
    with pytest.raises(ConfigError, match="--since: 'last week' is not an ISO date"):
        _args(["--since", "last week"])
    with pytest.raises(ConfigError, match="--since must be before --until"):
        _args(["--since=2026-12-01", "--until=2026-11-01"])
    with pytest.raises(ConfigError, match="unknown option --verbose"):
        _args(["--verbose"])
    opts, rest = _args(["--since", "2026-11-01", "--fail-on-alert", "monitor.window_days=7"])
    assert opts["fail_on_alert"] and rest == ["monitor.window_days=7"]
    assert _windows(0, 10 * 86400, 7) == [(0, 7 * 86400), (7 * 86400, 10 * 86400)]
