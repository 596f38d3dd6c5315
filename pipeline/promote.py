"""Human oversight of the champion: promote a version by hand, or roll back.

    python -m pipeline.promote VERSION --reason "why"      # make promote VERSION=3 REASON=…
    python -m pipeline.promote --rollback --reason "why"   # make rollback REASON=…
    [registry.tracking_uri=… registry.model_name=…]

A person may overrule the promotion policy's choice between VALIDATED versions, never the
verdict: the version must be VALIDATED, judged with no policy override, hold its recorded
bytes, and still pass the gates of the policy committed in conf/ now (its judged metrics are
read back from the registry and judged again). Who (GOVPIPE_ACTOR, else `git config user.name`,
else the login name — a name an auditor asked for, never an e-mail address: it is scrubbed like
the reason), when and why are recorded as version tags and in the champion history
(`make champion`). A rollback marks the demoted version, so the policy never re-picks it.
Exit 2, with the reason, when anything is refused; nothing moves then.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from pipeline.audit import gates, policy
from pipeline.config.governance import GovernanceSpec
from pipeline.privacy import Scrubber
from pipeline.runtime import logs
from pipeline.runtime.errors import ConfigError, PipelineError
from pipeline.runtime.paths import FAIRNESS_REPORT, PERFORMANCE
from pipeline.tracking import champions
from pipeline.tracking.client import ARTIFACT_SHA_TAG, Registry, RegistryError, servable, store_lock
from pipeline.tracking.settings import load_config

EXIT_USER_ERROR = 2


class PromotionRefused(PipelineError):
    """The version may not become champion: the message says why."""


def actor() -> str:
    who = os.environ.get("GOVPIPE_ACTOR", "").strip()
    if not who:
        proc = subprocess.run(["git", "config", "user.name"], capture_output=True, text=True,
                              check=False)
        who = proc.stdout.strip()
    return who or getpass.getuser()


def _version_number(ref: str, model_name: str) -> str:
    m = re.fullmatch(r"(?:models:/([^/@]+)/)?(\d+)", ref.strip())
    if m is None:
        raise ConfigError(f"version '{ref}': expected a number or models:/NAME/NUMBER")
    if m[1] is not None and m[1] != model_name:
        raise PromotionRefused(f"version '{ref}' belongs to model '{m[1]}', not "
                               f"'{model_name}' (set registry.model_name=… to act on it)")
    return m[2]


def check_promotable(reg, config, number: str) -> None:
    """PromotionRefused unless the version is VALIDATED, unaltered, and passes the gates of the
    policy committed now."""

    cfg = config.registry
    what = f"version {number} of '{cfg.model_name}'"
    try:
        mv = reg.call("read the version", reg.client.get_model_version, cfg.model_name, number)
    except RegistryError as e:
        if e.code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise PromotionRefused(f"{what} does not exist") from None
        raise
    problems = servable({**mv.tags, "promoted": "true"})  # a person may promote it first
    if problems:
        raise PromotionRefused(f"{what} may not be champion: {'; '.join(problems)}")
    reg.load_verified(f"models:/{cfg.model_name}/{number}", mv.tags[ARTIFACT_SHA_TAG], what)
    with tempfile.TemporaryDirectory(prefix="govpipe-promote-") as tmp:
        judged = {}
        for rel in (FAIRNESS_REPORT, PERFORMANCE):
            dst = Path(tmp) / Path(rel).parent
            dst.mkdir(parents=True, exist_ok=True)
            path = reg.download(f"runs:/{mv.run_id}/{rel}", dst)
            judged[rel] = json.loads(path.read_text(encoding="utf-8"))
    committed = policy.committed(Path.cwd(), mv.tags.get("dataset", config.data.name),
                                 cfg.name)
    results = gates.judge(GovernanceSpec.model_validate(committed["governance"]),
                          judged[FAIRNESS_REPORT], judged[PERFORMANCE])
    verdict, reasons = gates.verdict(results, 0)
    if verdict != "VALIDATED":
        raise PromotionRefused(f"{what} is REJECTED under the policy committed now: "
                               f"{'; '.join(reasons)}")


def promote(reg, config, number: str, who: str, reason: str) -> dict:
    cfg = config.registry
    if reg.alias_version(cfg.model_name, cfg.champion_alias) == number:
        return {"version": number, "unchanged": True}
    check_promotable(reg, config, number)
    at = datetime.now(UTC).isoformat(timespec="seconds")
    return champions.move(reg, cfg, number, by=f"person:{who}", round_id="manual", why=reason,
                          extra_tags={"promoted_by": who, "promoted_at": at,
                                      "promotion_reason": reason})


def rollback(reg, config, who: str, reason: str) -> dict:
    cfg = config.registry
    current = reg.alias_version(cfg.model_name, cfg.champion_alias)
    moves = champions.history(reg, cfg.model_name)
    into = [m for m in moves if m.get("version") == current]
    previous = into[-1].get("from") if into and current is not None else None
    if previous is None:
        raise PromotionRefused(f"'{cfg.model_name}' has no previous champion to roll back to "
                               f"(champion: {current or 'none'}; {len(moves)} recorded move(s))")
    check_promotable(reg, config, previous)
    at = datetime.now(UTC).isoformat(timespec="seconds")
    for k, v in {champions.DEMOTED_TAG: who, "demoted_at": at, "demotion_reason": reason}.items():
        reg.call("tag the demoted version", reg.client.set_model_version_tag, cfg.model_name,
                 current, k, v)
    return champions.move(reg, cfg, previous, by=f"person:{who}", round_id="manual",
                          why=f"rollback from version {current}: {reason}",
                          extra_tags={"promoted_by": who, "promoted_at": at,
                                      "promotion_reason": reason})


def main(argv: list[str]) -> int:
    logs.setup()
    ap = argparse.ArgumentParser(prog="python -m pipeline.promote", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("version", nargs="?", help="version number or models:/NAME/NUMBER")
    ap.add_argument("--rollback", action="store_true", help="back to the previous champion")
    ap.add_argument("--reason", default="", help="why (recorded; required)")
    try:
        config, rest = load_config(argv)
        args = ap.parse_args(rest)
        if bool(args.version) == args.rollback:
            raise ConfigError("give a VERSION to promote, or --rollback (not both)")
        if not args.reason.strip():
            raise ConfigError("--reason is required: an oversight decision records why")
        scrub = Scrubber.from_config(config.privacy).scrub
        who, reason = scrub(actor())[:200], scrub(args.reason.strip())[:1000]
        cfg = config.registry
        with store_lock(cfg.tracking_uri):
            reg = Registry(cfg.tracking_uri, retries=cfg.retries, backoff=cfg.backoff_seconds,
                           timeout=cfg.timeout_seconds)
            if args.rollback:
                entry = rollback(reg, config, who, reason)
            else:
                entry = promote(reg, config, _version_number(args.version, cfg.model_name),
                                who, reason)
    except PipelineError as e:
        print(f"promote: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    if entry.get("unchanged"):
        print(f"version {entry['version']} is already the champion; nothing moved")
    else:
        print(f"{cfg.model_name}@{cfg.champion_alias}: version {entry['from'] or '-'} -> "
              f"{entry['version']} by {entry['by']} ({entry['at']}): {entry['why']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
