"""split: deterministic train/validation/test split, stratified by target × sensitive groups.

    dvc repro split
    python -m pipeline.split split.seed=7
    python -m pipeline.split -m split.seed=1,2,3
"""

from __future__ import annotations

import logging

import numpy as np

from pipeline.runtime.errors import DataError
from pipeline.runtime.paths import INGESTED, SPLIT, SPLIT_REPORT
from pipeline.runtime.runner import Context, main

log = logging.getLogger("pipeline.split")

OUTS = (*SPLIT.values(), SPLIT_REPORT)
PARAMS = ("data.name", "data.target", "data.sensitive", "split")


def _strata(df, target: str, attrs: list[str]):
    """Each row's stratum as an int code, and the stratum names ("<target>|<attr>|...").

    Codes number the names in sorted order, so scikit-learn's stratified split (which only
    sees their order, through np.unique) draws exactly what it draws from the names
    themselves, while no string is built per row (49M rows at Adult ×1000)."""
    import pandas as pd

    cols = [target, *attrs]
    combos = df[cols].astype("category").apply(lambda s: s.cat.codes.astype(np.int64))
    key = np.zeros(len(df), dtype=np.int64)
    for c in cols:
        key = key * (len(df[c].astype("category").cat.categories) + 1) + (combos[c] + 1)
    present, inverse = np.unique(key, return_inverse=True)
    firsts = np.zeros(len(present), dtype=np.int64)
    firsts[inverse] = np.arange(len(df))  # some row of each stratum, to name it
    sample = df[cols].iloc[firsts]
    names = sample[target].astype(str).to_numpy(dtype=object)
    for a in attrs:
        names = names + "|" + sample[a].astype(str).to_numpy(dtype=object)
    order = np.argsort(names.astype(str), kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return pd.Series(rank[inverse], index=df.index), [str(n) for n in names[order]]


def _assign(strata, ratios: dict[str, float], seed: int):
    """Row positions per split; sorted so files keep the ingest order (byte-stable output)."""
    from sklearn.model_selection import train_test_split

    pos = np.arange(len(strata))
    train, rest = train_test_split(pos, train_size=ratios["train"], stratify=strata,
                                   random_state=seed)
    if ratios["val"] == 0:
        val, test = pos[:0], rest
    else:
        share = ratios["test"] / (ratios["val"] + ratios["test"])
        val, test = train_test_split(rest, test_size=share, stratify=strata.iloc[rest],
                                     random_state=seed)
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def counts(parts: dict, target: str, attrs: list[str]) -> dict:
    out = {}
    for name, df in parts.items():
        by_attr = {}
        for a in attrs:
            table = df.groupby([a, target], observed=False).size()
            by_attr[a] = {
                str(g): {str(t): int(table[(g, t)]) for t in df[target].cat.categories}
                for g in df[a].cat.categories
            }
        out[name] = {"rows": len(df), "by_group": by_attr}
    return out


def run(ctx: Context) -> None:
    import pandas as pd

    spec, cfg = ctx.params.data, ctx.params.split
    src = ctx.require(INGESTED, "ingest")
    df = pd.read_parquet(src)
    target = spec.target.column
    needed = [target, *spec.sensitive]
    absent = [c for c in needed if c not in df.columns]
    if absent:
        raise DataError(f"{src}: column(s) {absent} missing (stale ingest output?)")

    strata, names = _strata(df, target, cfg.stratify_by)
    sizes = strata.value_counts()
    sizes.index = [names[i] for i in sizes.index]
    # Each stratum needs a member in every split; the smallest split decides how many.
    smallest = min(r for r in (cfg.train, cfg.val, cfg.test) if r > 0)
    need = max(3, int(1 / smallest) + 1)
    tiny = sizes[sizes < need]
    if len(tiny):
        raise DataError(
            f"split.stratify_by {cfg.stratify_by}: stratum/strata too small to appear in every "
            f"split (need ≥ {need} rows): "
            + ", ".join(f"{k} ({v} rows)" for k, v in tiny.items())
        )
    ratios = {"train": cfg.train, "val": cfg.val, "test": cfg.test}
    parts = {k: df.iloc[v].reset_index(drop=True) for k, v in _assign(strata, ratios,
                                                                      cfg.seed).items()}
    for name, part in parts.items():
        for a in cfg.stratify_by:
            absent_groups = sorted(set(df[a].dropna().unique()) - set(part[a].unique()))
            if absent_groups:
                raise DataError(f"split '{name}' has no rows of {a} group(s) {absent_groups}")
        part.to_parquet(ctx.outputs.path(SPLIT[name]), index=False)

    ctx.outputs.write_json(SPLIT_REPORT, {
        "dataset": spec.name,
        "ratios": ratios,
        "seed": cfg.seed,
        "stratified_by": [target, *cfg.stratify_by],
        "target_positive": spec.target.positive,
        "splits": counts(parts, target, list(spec.sensitive)),
    })
    log.info("split %d rows: %s", len(df), ", ".join(f"{k} {len(v)}" for k, v in parts.items()))


if __name__ == "__main__":
    main("split", PARAMS, OUTS, run)
