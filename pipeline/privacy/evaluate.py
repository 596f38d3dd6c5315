"""Precision and recall of a detector set against a labelled corpus.

Corpus format (JSON lines)::

    {"text": "mail a@example.com", "entities": [{"type": "EMAIL", "start": 5, "end": 18}]}

Lines without PII have ``"entities": []``; they are where false positives show up.
A prediction is a true positive when a gold entity of the same type has the same span
(``match="exact"``) or overlaps it (``match="overlap"``, fairer to tools that trim or
extend spans by a character). Each gold entity can be matched once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Metrics", "evaluate", "load_corpus", "format_table"]


@dataclass
class Metrics:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def load_corpus(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _matches(p: tuple[str, int, int], g: tuple[str, int, int], match: str) -> bool:
    if p[0] != g[0]:
        return False
    if match == "exact":
        return p[1] == g[1] and p[2] == g[2]
    return p[1] < g[2] and g[1] < p[2]


def evaluate(
    predict: Callable[[str], Iterable[Any]] | Sequence[Iterable[Any]],
    corpus: Sequence[dict[str, Any]],
    match: str = "exact",
) -> dict[str, Metrics]:
    """Per-entity-type metrics.

    ``predict`` is either a function ``text -> findings`` or, for predictions computed
    elsewhere (another process, another tool), a sequence aligned with ``corpus``.
    Findings may be :class:`Finding` objects, ``(type, start, end)`` tuples or dicts
    with ``type``/``entity``, ``start``, ``end``.
    """
    if match not in ("exact", "overlap"):
        raise ValueError("match must be 'exact' or 'overlap'")
    out: dict[str, Metrics] = {}
    for i, row in enumerate(corpus):
        preds_raw = predict(row["text"]) if callable(predict) else predict[i]
        preds = [_norm(p) for p in preds_raw]
        gold = [(e["type"], e["start"], e["end"]) for e in row["entities"]]
        used = [False] * len(gold)
        for p in preds:
            m = out.setdefault(p[0], Metrics())
            for j, g in enumerate(gold):
                if not used[j] and _matches(p, g, match):
                    used[j] = True
                    m.tp += 1
                    break
            else:
                m.fp += 1
        for j, g in enumerate(gold):
            if not used[j]:
                out.setdefault(g[0], Metrics()).fn += 1
    return dict(sorted(out.items()))


def _norm(p: Any) -> tuple[str, int, int]:
    if isinstance(p, dict):
        return (p.get("type") or p["entity"], int(p["start"]), int(p["end"]))
    if isinstance(p, (tuple, list)):
        return (str(p[0]), int(p[1]), int(p[2]))
    return (p.entity, p.start, p.end)


def format_table(results: dict[str, dict[str, Metrics]]) -> str:
    """Side-by-side table: rows = entity types, column pairs = tools."""
    tools = list(results)
    types = sorted({t for r in results.values() for t in r})
    head = f"{'entity':<12}" + "".join(f" | {t[:13]:>13} P / R" for t in tools)
    lines = [head, "-" * len(head)]
    for t in types:
        cells = []
        for tool in tools:
            m = results[tool].get(t)
            cells.append(" | " + (f"{m.precision:>11.3f} / {m.recall:.3f}" if m else f"{'-':>19}"))
        lines.append(f"{t:<12}" + "".join(cells))
    return "\n".join(lines)
