"""Precision / recall of the built-in detectors on the labelled synthetic corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.privacy import Scrubber
from pipeline.privacy.evaluate import evaluate, format_table, load_corpus

CORPUS = Path(__file__).parent / "data" / "pii_corpus.jsonl"
TYPES = ["EMAIL", "PHONE", "US_SSN", "CREDIT_CARD", "IPV4", "IPV6", "IBAN"]


@pytest.fixture(scope="module")
def corpus():
    return load_corpus(CORPUS)


@pytest.fixture(scope="module")
def metrics(corpus):
    return evaluate(Scrubber.from_config().scan, corpus, match="exact")


def test_corpus_shape(corpus):
    assert len(corpus) >= 150
    counts = {t: 0 for t in TYPES}
    for row in corpus:
        for e in row["entities"]:
            assert 0 <= e["start"] < e["end"] <= len(row["text"])
            counts[e["type"]] += 1
    assert all(n >= 20 for n in counts.values()), counts
    negatives = sum(1 for row in corpus if not row["entities"])
    assert negatives >= 30


@pytest.mark.parametrize("entity", TYPES)
def test_precision_recall_per_type(metrics, entity):
    m = metrics[entity]
    assert m.recall >= 0.95, (entity, m, format_table({"govpipe": metrics}))
    assert m.precision >= 0.95, (entity, m, format_table({"govpipe": metrics}))


def test_no_unexpected_entity_types(metrics):
    assert set(metrics) <= set(TYPES)
