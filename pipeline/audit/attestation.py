"""The signed statement of what was judged: an in-toto Statement in a DSSE envelope.

    stmt = statement(name, version, model_sha256, artifact_sha256, judgement)
    env = envelope(stmt, key)              # key: Ed25519PrivateKey, or None (unsigned)
    stmt, problems = examine(env, public_key, name=..., artifact_sha256=...)

Statement (in-toto Statement v1): the subjects are the model file governance judged
(`model.pkl`, its sha256) and the registered artefact (`models:/NAME/VERSION`, its tree digest,
`pipeline.runtime.hashing.tree_sha256`, which the server recomputes before unpickling); the
predicate is the register stage's judgement (verdict, every gate with value, CI and threshold,
data and params hashes, git commit, time, signed or not).

Envelope (DSSE v1): the statement's canonical JSON, base64, signed with Ed25519 over the DSSE
pre-authentication encoding, so a signature cannot be replayed onto another payload type.
Hand-written on `cryptography` rather than OpenSSF `model-signing` (1.1.1): that package signs only
its own predicate (a manifest of file digests, no verdict or gates), its key signer takes EC
keys but not Ed25519, and as installed from its declared dependencies it does not import (needs
pyOpenSSL); DSSE itself is a dozen lines.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pipeline.audit.keys import keyid
from pipeline.runtime.errors import PipelineError

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
PREDICATE_TYPE = "urn:govpipe:governance:v1"
MODEL_SUBJECT = "model.pkl"
# What a statement records of each gate (GateResult fields; the reason text and excluded
# groups are in the governance report uploaded with the run).
GATE_FIELDS = ("id", "kind", "metric", "attribute", "value", "ci", "basis", "compared",
               "threshold", "direction", "passed", "advisory")


class AttestationError(PipelineError):
    """An envelope or statement is malformed, missing or does not verify."""


def model_uri(name: str, version: str | int) -> str:
    return f"models:/{name}/{version}"


def statement(name: str, version: str | int | None, model_sha256: str,
              artifact_sha256: str | None, judgement: Mapping[str, Any],
              time: datetime | None = None) -> dict[str, Any]:
    """The in-toto Statement; `version` None for a model that was not registered (REJECTED
    under `block`: the statement of why, about the judged file only). `judgement`: data_hash,
    params_hash, git_commit, git_dirty,
    dataset, verdict, eligible, policy_overrides (list) and gates (GateResult dicts)."""
    when = (time or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": MODEL_SUBJECT, "digest": {"sha256": model_sha256}},
            *([] if version is None else
              [{"name": model_uri(name, version), "digest": {"sha256": artifact_sha256}}]),
        ],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "model": {"name": name, "version": None if version is None else str(version)},
            "dataset": judgement["dataset"],
            "data_hash": judgement["data_hash"],
            "params_hash": judgement["params_hash"],
            "git_commit": judgement["git_commit"],
            "git_dirty": bool(judgement["git_dirty"]),
            "verdict": judgement["verdict"],
            "eligible": bool(judgement["eligible"]),
            "policy_overrides": list(judgement["policy_overrides"]),
            "gates": [{k: g.get(k) for k in GATE_FIELDS} for g in judgement["gates"]],
            "time": when.replace("+00:00", "Z"),
            "signed": False,  # set by envelope()
        },
    }


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what is actually signed."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def envelope(stmt: Mapping[str, Any], key: Ed25519PrivateKey | None) -> dict[str, Any]:
    """The DSSE envelope of `stmt`, signed with `key`; without a key it has no signatures and
    the predicate says `signed: false`."""
    stmt = {**stmt, "predicate": {**stmt["predicate"], "signed": key is not None}}
    body = _canonical(stmt)
    signatures = [] if key is None else [{
        "keyid": keyid(key.public_key()),
        "sig": base64.b64encode(key.sign(pae(PAYLOAD_TYPE, body))).decode(),
    }]
    return {"payloadType": PAYLOAD_TYPE, "payload": base64.b64encode(body).decode(),
            "signatures": signatures}


def parse(env: Any) -> tuple[dict[str, Any], bytes, list[dict[str, str]]]:
    """(statement, payload bytes, signatures) of an envelope; AttestationError naming what is
    malformed. Says nothing about whether it is signed or by whom."""
    if not isinstance(env, Mapping):
        raise AttestationError("the envelope is not a JSON object")
    _expect(env, "payloadType", PAYLOAD_TYPE, "envelope")
    sigs = _records(env, "signatures", "sig", str, "envelope")
    body = _b64(env.get("payload"), "envelope payload")
    try:
        stmt = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AttestationError(f"envelope payload is not JSON ({e})") from None
    if not isinstance(stmt, dict) or stmt.get("_type") != STATEMENT_TYPE:
        raise AttestationError(f"payload is not an in-toto Statement v1 (_type "
                               f"{stmt.get('_type') if isinstance(stmt, dict) else None!r})")
    _expect(stmt, "predicateType", PREDICATE_TYPE, "statement")
    _records(stmt, "subject", "digest", Mapping, "statement")
    if not isinstance(stmt.get("predicate"), Mapping):
        raise AttestationError("statement has no predicate")
    return stmt, body, [dict(s) for s in sigs]


def _expect(obj: Mapping, key: str, want: str, what: str) -> None:
    if obj.get(key) != want:
        raise AttestationError(f"{what} {key} is {obj.get(key)!r}, not {want!r}")


def _records(obj: Mapping, key: str, field: str, kind: type, what: str) -> list:
    """obj[key] as a list of objects whose `field` is a `kind`."""
    value = obj.get(key)
    if not isinstance(value, list) or not all(
            isinstance(v, Mapping) and isinstance(v.get(field), kind) for v in value):
        raise AttestationError(f"{what} {key} is not a list of objects with a {field!r}")
    return value


def _b64(value: Any, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (TypeError, ValueError, binascii.Error):
        raise AttestationError(f"{what} is not base64") from None


def signature_problem(body: bytes, signatures: list[dict[str, str]],
                      public: Ed25519PublicKey) -> str | None:
    """None when one signature verifies over PAE(body) with `public`, else what is wrong."""
    mine = keyid(public)
    if not signatures:
        return "the statement is unsigned (signed: false): no key was configured when it was " \
               "registered"
    message = pae(PAYLOAD_TYPE, body)
    for s in signatures:
        try:
            public.verify(_b64(s["sig"], "signature"), message)
            return None
        except (InvalidSignature, AttestationError):
            continue
    ids = sorted({str(s.get("keyid", "?")) for s in signatures})
    if mine in ids:
        return (f"the signature by key {mine[:16]}… does not match the payload: the statement "
                "was changed after it was signed")
    return (f"signed by another key ({', '.join(i[:16] + '…' for i in ids)}), not by the "
            f"given public key {mine[:16]}…")


def check(stmt: Mapping[str, Any], *, name: str | None = None, version: str | None = None,
          model_sha256: str | None = None, artifact_sha256: str | None = None,
          served: bool = False) -> list[str]:
    """What in a (parsed) statement contradicts the expected model: subject digests against
    the artefact actually at hand, model name and version, a verdict other than VALIDATED.
    `served`: also a statement that says the model may not be champion (REJECTED, or judged
    under overridden policy), which edited tags and a moved alias could otherwise put in
    service. Which eligible version is champion is the promotion policy's or a person's call,
    recorded in the champion history, not in the statement: it is made at registration."""
    problems = []
    pred = stmt["predicate"]
    model = pred.get("model") or {}
    if name is not None and model.get("name") != name:
        problems.append(f"statement is about model {model.get('name')!r}, not {name!r}")
    if version is not None and str(model.get("version")) != str(version):
        problems.append(f"statement is about version {model.get('version')!r}, not {version}")
    digests = {s.get("name"): s["digest"].get("sha256") for s in stmt["subject"]}
    expected = {MODEL_SUBJECT: model_sha256,
                model_uri(model.get("name"), model.get("version")): artifact_sha256}
    for subject, actual in expected.items():
        if actual is None:
            continue
        if subject not in digests:
            problems.append(f"statement has no subject {subject}")
        elif digests[subject] != actual:
            problems.append(f"subject {subject} has sha256 {str(digests[subject])[:16]}…, but "
                            f"the artefact at hand hashes to {actual[:16]}…")
    if pred.get("verdict") != "VALIDATED":
        problems.append(f"verdict is {pred.get('verdict')!r}, not 'VALIDATED'")
    if served and pred.get("eligible") is not True:
        problems.append("the statement says it may not be champion (not eligible)")
    if served and pred.get("policy_overrides"):
        problems.append(f"the statement says it was judged under overridden policy "
                        f"({', '.join(map(str, pred['policy_overrides']))})")
    return problems


def examine(env: Any, public: Ed25519PublicKey, **expected: Any
            ) -> tuple[dict[str, Any] | None, list[str]]:
    """(statement, every problem): malformed, badly signed or from another key, or
    contradicting `expected` (see `check`). An empty list means it verifies."""
    try:
        stmt, body, signatures = parse(env)
    except AttestationError as e:
        return None, [str(e)]
    problem = signature_problem(body, signatures, public)
    return stmt, ([problem] if problem else []) + check(stmt, **expected)


def signer(env: Mapping[str, Any]) -> str:
    """The key id an envelope names (unverified), or '' when unsigned."""
    sigs = env.get("signatures") or []
    return str(sigs[0].get("keyid", "")) if sigs else ""
