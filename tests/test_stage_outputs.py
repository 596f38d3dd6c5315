"""A file system that refuses a stage's writes (full, read-only): one line, exit 2, no leftovers.

The refusals are real: a tiny tmpfs fills up, a read-only tmpfs refuses to create files. Both
need `mount` (root here); without it the full-disk test is skipped and the read-only one falls
back to a directory without write permission (which only stops a non-root user).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pipeline.runtime.errors import OutputError
from pipeline.runtime.outputs import PARTIAL, Outputs
from tests.conftest import ROOT, stage


@contextmanager
def tmpfs(where: Path, options: str) -> Iterator[bool]:
    """A tmpfs mounted at `where` for the block; yields False if mounting is not permitted."""
    where.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                          capture_output=True, text=True)
    try:
        yield proc.returncode == 0
    finally:
        if proc.returncode == 0:
            subprocess.run(["umount", str(where)], check=True)


def leftovers(root: Path) -> list[Path]:
    """Files a failed stage left, besides Hydra's own run files (.hydra/, the log)."""
    return [p for p in root.rglob("*") if p.is_file()
            and ".hydra" not in p.parts and p.suffix != ".log"]


def assert_one_line_refusal(proc, needle: str, run_dir: Path) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "Logging error" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and needle in errors[0], proc.stderr
    assert leftovers(run_dir) == []


def test_full_disk_names_the_output_and_leaves_nothing(tmp_path, pulled_data):
    disk = tmp_path / "disk"
    # Room for Hydra's run files (~10 kB) but not for the ingested Parquet file (~1 MB).
    with tmpfs(disk, "size=64k") as mounted:
        if not mounted:
            pytest.skip("cannot mount a tmpfs here (needs root), so no real full disk to test")
        run_dir = disk / "run"
        proc = stage(ROOT, "ingest", f"hydra.run.dir={run_dir}")
        assert_one_line_refusal(
            proc, f"ingest failed: cannot write {run_dir}/artifacts/ingest.parquet: "
                  "No space left on device (ENOSPC)", run_dir)


def test_read_only_output_dir_names_the_output_and_leaves_nothing(tmp_path, pulled_data):
    run_dir = tmp_path / "run"
    artifacts = run_dir / "artifacts"
    with tmpfs(artifacts, "ro,size=64k") as mounted:
        if not mounted:
            artifacts.chmod(0o555)
            if os.access(artifacts, os.W_OK):
                pytest.skip("no read-only mount and permissions do not stop this user (root)")
        reason = "Read-only file system (EROFS)" if mounted else "Permission denied (EACCES)"
        proc = stage(ROOT, "ingest", f"hydra.run.dir={run_dir}")
        assert_one_line_refusal(
            proc, f"cannot write {artifacts}/ingest.parquet: {reason}", run_dir)
        assert not (run_dir / "reports").exists() or leftovers(run_dir / "reports") == []


def test_refused_open_names_the_final_path_not_the_temporary(tmp_path):
    out = tmp_path / "out"
    with tmpfs(out, "ro,size=64k") as mounted:
        if not mounted:
            pytest.skip("cannot mount a read-only tmpfs here (needs root)")
        outputs = Outputs(out.parent)
        with pytest.raises(OSError) as e:
            outputs.write_json("out/report.json", {"a": 1})
        assert PARTIAL in e.value.filename  # Python names the temporary it tried to open …
        err = outputs.write_error(e.value)
        outputs.abort()
    assert isinstance(err, OutputError)  # … the message names the file the user asked for
    assert str(err) == f"cannot write {out}/report.json: Read-only file system (EROFS)"


def test_refused_input_is_not_called_an_output(tmp_path):
    err = PermissionError(13, "Permission denied", str(tmp_path / "data.csv"))
    assert str(Outputs(tmp_path).write_error(err)) == (
        f"cannot access {tmp_path}/data.csv: Permission denied (EACCES)")


def test_other_os_errors_are_not_disguised(tmp_path):
    err = FileNotFoundError(2, "No such file or directory", str(tmp_path / "x"))
    assert Outputs(tmp_path).write_error(err) is None  # a bug keeps its traceback
