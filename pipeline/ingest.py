"""ingest: raw files → typed, validated, PII-handled Parquet and a validation/profile report.

    dvc repro ingest                # under DVC (params: data)
    python -m pipeline.ingest data=german    # standalone, writes under outputs/ingest/
"""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline.dataset import profile, rows, sensitive
from pipeline.dataset import read as rawdata
from pipeline.privacy import Scrubber
from pipeline.privacy.columns import PIISaltMissing, apply_column_policies, require_salt
from pipeline.runtime.errors import ConfigError
from pipeline.runtime.paths import INGEST_REPORT, INGESTED
from pipeline.runtime.runner import Context, main

log = logging.getLogger("pipeline.ingest")

OUTS = (INGESTED, INGEST_REPORT)
PARAMS = ("data", "privacy")


def _pii_policies(spec) -> dict[str, str]:
    return {name: col.pii for name, col in spec.columns.items() if col.pii is not None}


def _salt_check(policies: dict[str, str]) -> None:
    hashed = [c for c, p in policies.items() if p == "hash"]
    if hashed:  # before any work

        try:
            require_salt(hashed[0])
        except PIISaltMissing as exc:
            raise ConfigError(f"data.columns.{hashed[0]}.pii: {exc}") from None


def _handled(frame, spec, policies: dict[str, str], scrubber):
    """One validated chunk with sensitive attributes derived and personal data handled."""

    frame = sensitive.derive(frame, spec)
    if policies:

        frame = apply_column_policies(frame, policies)
    if scrubber is not None:
        # Free text may hold personal data nobody declared: redact what the detectors find.
        for c in _free_text(spec, frame):
            frame[c] = frame[c].map(lambda v: v if v is None or v != v else scrubber.scrub(v))
    return frame


def _free_text(spec, frame) -> list[str]:
    return [c for c, col in spec.columns.items()
            if col.type == "string" and col.pii is None and c in frame]


def run(ctx: Context) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    spec = ctx.params.data
    policies = _pii_policies(spec)
    _salt_check(policies)
    scrubber = None
    if any(col.type == "string" and col.pii is None for col in spec.columns.values()):
        scrubber = Scrubber.from_config(ctx.params.privacy)

    # Chunk by chunk: read, type, validate, handle personal data, profile, append to the
    # Parquet file. Memory is bounded by one chunk (read.CHUNK_ROWS rows), not by the dataset.
    files: list = []
    validator, prof = rows.Validator(spec), profile.Profile(spec)
    out_path = ctx.outputs.path(INGESTED)
    writer, rows_out, columns_out = None, 0, []
    try:
        for raw in rawdata.chunks(spec, Path.cwd(), files):  # raw data always from the repo
            frame = validator.add(raw)
            if frame is None:
                continue  # a rule is broken: keep reading for the report, write nothing
            frame = _handled(frame, spec, policies, scrubber)
            prof.add(frame)
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:  # pandas' to_parquet defaults, so one chunk = one to_parquet
                writer = pq.ParquetWriter(out_path, table.schema, compression="snappy")
            writer.write_table(table)
            rows_out, columns_out = rows_out + len(frame), list(frame.columns)
    finally:
        if writer is not None:
            writer.close()
    log.info("read %d rows from %d file(s) of dataset '%s'", validator.rows_in, len(files),
             spec.name)
    validator.finish()

    dropped = validator.rows_in - rows_out
    ctx.outputs.write_json(INGEST_REPORT, {
        "dataset": spec.name,
        "files": [{"path": f.path, "rows": f.rows} for f in files],
        "rows_in": validator.rows_in,
        "rows_out": rows_out,
        "rows_dropped": {"total": dropped, "by_reason": validator.dropped},
        "missing_values": validator.missing,
        "pii_columns": policies,
        "columns_out": columns_out,
        **prof.result(),
    })
    log.info("kept %d rows, dropped %d (%s)", rows_out, dropped,
             ", ".join(f"{k}: {v}" for k, v in validator.dropped.items()) or "none")


if __name__ == "__main__":
    main("ingest", PARAMS, OUTS, run)
