"""Champion moves: the one way the champion alias moves (register's policy, a person's
`pipeline.promote`), and the history of moves kept on the registered model.

Each move is a registered-model tag `champion_move.<ns timestamp>` holding JSON
{version, from, by, round, why, at}: readable with any MLflow client, ordered by key, never
rewritten. `by` is "policy" for the register stage, "person:<name>" for a person.

Rounds make a sweep's outcome independent of finishing order. A round is the git commit a
pipeline run judged (every queued experiment of one sweep shares it). Within a round every
candidate is compared with the same anchor — the champion before the round's first policy move —
and the champion is the best of the round's candidates that beat the anchor
(pipeline.audit.promotion.best), so the order they finish in cannot change who wins. A person's
move ends the round: later candidates compare with what the person chose.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from pipeline.tracking.client import RegistryError, servable

MOVE_PREFIX = "champion_move."
# Version tags the policy writes (underscored: MLflow's tag search needs no quoting then).
ROUND_TAG, ANCHOR_TAG, PASSED_TAG = "promotion_round", "promotion_anchor", "promotion_passed"
MARGIN_TAG, COMPARISON_TAG = "promotion_margin", "promotion_comparison"
SPLIT_TAG, FIGURES_TAG = "eval_split_sha256", "eval_figures"
DEMOTED_TAG = "demoted_by"  # a person rolled this version back: the policy never re-picks it
NO_ANCHOR = "none"


def history(reg, model_name: str) -> list[dict[str, Any]]:
    """Every champion move, oldest first ([] before the first)."""

    try:
        rm = reg.call("read the registered model", reg.client.get_registered_model, model_name)
    except RegistryError as e:
        if e.code == "RESOURCE_DOES_NOT_EXIST":
            return []
        raise
    moves = []
    for key in sorted(k for k in (rm.tags or {}) if k.startswith(MOVE_PREFIX)):
        try:
            moves.append({**json.loads(rm.tags[key]), "key": key})
        except json.JSONDecodeError:  # an edited tag: show it, never act on it
            moves.append({"version": None, "by": "unreadable", "round": None, "key": key})
    return moves


def anchor_tag(moves: list[dict[str, Any]], anchor_version: str | None) -> str:
    """What a candidate was compared against: the anchor version and the last move a person
    made. Candidates compared before a person's move never compete after it, even against the
    same version (a rollback to version 1 must not let the round's other candidates that beat
    version 1 take over at the next registration)."""
    people = [m["key"] for m in moves if str(m.get("by", "")).startswith("person:")]
    return f"{anchor_version or NO_ANCHOR}|{people[-1] if people else ''}"


def anchor(moves: list[dict[str, Any]], current: str | None, round_id: str) -> str | None:
    """The version a candidate of `round_id` is compared with (None: no champion yet)."""
    i = len(moves)
    while i and moves[i - 1].get("by") == "policy" and moves[i - 1].get("round") == round_id:
        i -= 1
    if i == len(moves) or (moves and moves[-1].get("version") != current):
        return current  # no move of this round yet, or the alias was moved outside a move
    return moves[i].get("from")


def move(reg, cfg, version: str, *, by: str, round_id: str, why: str,
         extra_tags: dict[str, str] | None = None) -> dict[str, Any]:
    """Make `version` the champion: tag it promoted (the server serves only promoted
    versions), move the alias, clear a challenger alias on it, record the move."""
    name = cfg.model_name
    previous = reg.alias_version(name, cfg.champion_alias)
    for k, v in {"promoted": "true", **(extra_tags or {})}.items():
        reg.call("tag the model version", reg.client.set_model_version_tag, name, version, k, v)
    reg.call("set the champion alias", reg.client.set_registered_model_alias, name,
             cfg.champion_alias, version)
    if reg.alias_version(name, cfg.challenger_alias) == str(version):
        reg.call("clear the challenger alias", reg.client.delete_registered_model_alias, name,
                 cfg.challenger_alias)
    entry = {"version": str(version), "from": previous, "by": by, "round": round_id,
             "why": why[:1500], "at": datetime.now(UTC).isoformat(timespec="seconds")}
    reg.call("record the champion move", reg.client.set_registered_model_tag, name,
             f"{MOVE_PREFIX}{time.time_ns():020d}", json.dumps(entry, sort_keys=True))
    return entry


def round_pool(reg, model_name: str, round_id: str, anchor: str) -> list[dict]:
    """The round's candidates that passed the policy against this anchor (`anchor_tag`),
    still eligible."""

    found = reg.call("search model versions", reg.client.search_model_versions,
                     f"name='{model_name}' and tags.{ROUND_TAG}='{round_id}'")
    pool = []
    for v in found:
        t = v.tags
        eligible = not [p for p in servable({**t, "promoted": "true"})]
        if (eligible and t.get(PASSED_TAG) == "true" and DEMOTED_TAG not in t
                and t.get(ANCHOR_TAG) == anchor):
            pool.append({"version": str(v.version), "margin": float(t[MARGIN_TAG]),
                         "sha": t.get("model_sha256", "")})
    return pool
