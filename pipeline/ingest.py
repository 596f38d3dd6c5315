"""ingest: raw files → typed, validated, PII-handled Parquet and a validation/profile report.

    dvc repro ingest                # under DVC (params: data)
    python -m pipeline.ingest data=german    # standalone, writes under outputs/ingest/
"""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline.runtime.errors import ConfigError
from pipeline.runtime.paths import INGEST_REPORT, INGESTED
from pipeline.runtime.runner import Context, main

log = logging.getLogger("pipeline.ingest")

OUTS = (INGESTED, INGEST_REPORT)
PARAMS = ("data", "privacy")


def _pii_policies(spec) -> dict[str, str]:
    return {name: col.pii for name, col in spec.columns.items() if col.pii is not None}


def run(ctx: Context) -> None:
    from pipeline.dataset import profile, rows, sensitive
    from pipeline.dataset import read as rawdata

    spec = ctx.params.data
    policies = _pii_policies(spec)
    hashed = [c for c, p in policies.items() if p == "hash"]
    if hashed:  # before any work
        from pipeline.privacy.columns import PIISaltMissing, require_salt

        try:
            require_salt(hashed[0])
        except PIISaltMissing as exc:
            raise ConfigError(f"data.columns.{hashed[0]}.pii: {exc}") from None

    raw, files = rawdata.read(spec, Path.cwd())  # raw data always comes from the repo
    log.info("read %d rows from %d file(s) of dataset '%s'", len(raw), len(files), spec.name)
    parsed = rows.parse(raw, spec)
    frame = rows.check(parsed, raw, spec)
    frame = sensitive.derive(frame, spec)
    if policies:
        from pipeline.privacy.columns import apply_column_policies

        frame = apply_column_policies(frame, policies)
    free_text = [c for c, col in spec.columns.items()
                 if col.type == "string" and col.pii is None and c in frame]
    if free_text:
        # Free text may hold personal data nobody declared: redact what the detectors find.
        from pipeline.privacy import Scrubber

        scrubber = Scrubber.from_config(ctx.params.privacy)
        for c in free_text:
            frame[c] = frame[c].map(lambda v: v if v is None or v != v else scrubber.scrub(v))

    frame.to_parquet(ctx.outputs.path(INGESTED), index=False)
    dropped = parsed.rows_in - len(frame)
    ctx.outputs.write_json(INGEST_REPORT, {
        "dataset": spec.name,
        "files": [{"path": f.path, "rows": f.rows} for f in files],
        "rows_in": parsed.rows_in,
        "rows_out": len(frame),
        "rows_dropped": {"total": dropped, "by_reason": parsed.dropped},
        "missing_values": parsed.missing,
        "pii_columns": policies,
        "columns_out": list(frame.columns),
        **profile.profile(frame, spec),
    })
    log.info("kept %d rows, dropped %d (%s)", len(frame), dropped,
             ", ".join(f"{k}: {v}" for k, v in parsed.dropped.items()) or "none")


if __name__ == "__main__":
    main("ingest", PARAMS, OUTS, run)
