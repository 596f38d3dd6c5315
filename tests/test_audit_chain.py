"""The audit log's chain: what verify finds (edit, deletion, truncation, gap, a lost segment),
what it accepts (rotation, expiry), and the config bounds. Pure file work, no processes."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from pipeline.audit.__main__ import main as audit_main
from pipeline.audit.chain import ChainWriter, expire, verify


def _log(d: Path, n: int = 12, rotate: int = 400, close: bool = True) -> list[Path]:
    d.mkdir(exist_ok=True)
    w = ChainWriter(d, "s1", rotate_bytes=rotate, rotate_seconds=3600)
    for i in range(n):
        w.append([{"kind": "prediction", "ts": 1_700_000_000 + i, "request_id": f"r{i}",
                   "index": 0, "label_id": i % 2}])
    if close:
        w.append([{"kind": "close", "ts": 1_700_000_100}])
    w.close_file()
    return sorted(d.glob("*.jsonl"))


def _lines(p: Path) -> list[bytes]:
    return p.read_bytes().splitlines(keepends=True)


def test_intact_log_verifies_across_rotated_segments(tmp_path, capsys):
    files = _log(tmp_path)
    assert len(files) > 3  # rotated
    r = verify(tmp_path)
    assert r.ok and r.records == 13 and r.streams == 1 and not r.open_streams
    assert audit_main(["verify", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: 13 records") and "2023-11-14T22:13:20" in out


def test_an_edited_record_is_reported_at_its_file_and_line(tmp_path, capsys):
    files = _log(tmp_path)
    lines = _lines(files[1])
    lines[1] = lines[1].replace(b'"request_id":"r', b'"request_id":"x')
    files[1].write_bytes(b"".join(lines))
    assert audit_main(["verify", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"{files[1].name} line 2: record hash mismatch: the record was edited" in out


def test_a_deleted_record_is_a_gap_at_the_next_one(tmp_path):
    files = _log(tmp_path, rotate=2000)
    lines = _lines(files[0])
    files[0].write_bytes(lines[0] + b"".join(lines[2:]))
    (p,) = verify(tmp_path).problems
    assert (p.file, p.line) == (files[0].name, 2) and "1 record(s) missing" in p.what


def test_a_deleted_segment_is_a_gap_at_the_first_line_of_the_next(tmp_path):
    files = _log(tmp_path)
    files[1].unlink()
    (p,) = verify(tmp_path).problems
    assert (p.file, p.line) == (files[2].name, 1) and "chain gap" in p.what


def test_a_truncated_file_is_reported(tmp_path):
    files = _log(tmp_path)
    data = files[1].read_bytes()
    files[1].write_bytes(data[: len(data) - 30])  # the last line cut short
    (p,) = verify(tmp_path).problems
    assert p.file == files[1].name and p.line == len(data[:-30].splitlines())
    assert "truncated" in p.what


def test_whole_lines_cut_from_a_middle_segment_break_the_next_link(tmp_path):
    files = _log(tmp_path)
    files[1].write_bytes(_lines(files[1])[0])
    (p,) = verify(tmp_path).problems
    assert (p.file, p.line) == (files[2].name, 1)


def test_a_lost_head_segment_is_reported_unless_expiry_recorded_it(tmp_path):
    files = _log(tmp_path / "a")
    files[0].unlink()
    (p,) = verify(tmp_path / "a").problems
    assert p.file == files[1].name and "no expiry record" in p.what

    files = _log(tmp_path / "b", close=False)
    old = time.time() - 400 * 86400
    os.utime(files[0], (old, old))
    w = ChainWriter(tmp_path / "b", "s2", rotate_bytes=10**6, rotate_seconds=3600)
    w.append(expire(tmp_path / "b", 183 * 86400))
    w.close_file()
    assert not files[0].exists() and files[1].exists()
    r = verify(tmp_path / "b")
    assert r.ok, r.problems
    assert r.kinds["expired"] == 1 and sorted(r.open_streams) == ["s1", "s2"]


def test_a_failed_write_leaves_no_partial_line_and_no_gap(tmp_path):
    w = ChainWriter(tmp_path, "s1", rotate_bytes=10**6, rotate_seconds=3600)
    w.append([{"kind": "prediction", "ts": 1, "request_id": "a", "index": 0}])
    real = os.write
    os.write = lambda fd, data: real(fd, data[:10]) and (_ for _ in ()).throw(
        OSError(28, "No space left on device"))
    try:
        with pytest.raises(OSError):
            w.append([{"kind": "prediction", "ts": 2, "request_id": "b", "index": 0}])
    finally:
        os.write = real
    w.append([{"kind": "prediction", "ts": 3, "request_id": "b", "index": 0}])
    w.close_file()
    r = verify(tmp_path)
    assert r.ok and r.records == 2


def test_verify_usage_errors_exit_2(tmp_path, capsys):
    assert audit_main(["verify", str(tmp_path / "nope")]) == 2
    assert audit_main(["verify", str(tmp_path)]) == 2
    assert audit_main(["check"]) == 2
    assert "no audit log segments" in capsys.readouterr().err


def test_json_output(tmp_path, capsys):
    _log(tmp_path)
    assert audit_main(["verify", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["records"] == 13


@pytest.mark.parametrize(("key", "value", "where"), [
    ("retention_days", 0, "serve.audit.retention_days"),
    ("retention_days", 5000, "serve.audit.retention_days"),
    ("rotate_mb", 0, "serve.audit.rotate_mb"),
    ("rotate_hours", 10_000, "serve.audit.rotate_hours"),
    ("flush_interval", 0, "serve.audit.flush_interval"),
])
def test_retention_and_rotation_out_of_range_are_config_errors(key, value, where):
    import yaml

    from pipeline.config import validate
    from pipeline.runtime.errors import ConfigError
    from tests.conftest import ROOT

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["serve"]["audit"][key] = value
    with pytest.raises(ConfigError, match=where.replace(".", r"\.")):
        validate(raw)


def test_expect_last_catches_a_chain_rewritten_after_a_kept_hash(tmp_path, capsys):
    _log(tmp_path)
    kept = verify(tmp_path).last_hash
    assert audit_main(["verify", str(tmp_path), "--expect-last", kept]) == 0
    for f in tmp_path.glob("*.jsonl"):  # a consistent rewrite: a new chain from scratch
        f.unlink()
    _log(tmp_path, n=5)
    assert verify(tmp_path).ok
    assert audit_main(["verify", str(tmp_path), "--expect-last", kept]) == 1
    assert "no record has the expected hash" in capsys.readouterr().out
