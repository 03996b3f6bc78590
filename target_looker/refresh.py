"""After a successful load: tell Looker the data changed (datagroups stale, PDTs rebuilt).

Called only once every batch is committed. A Looker failure here is reported in the
summary and the log, never raised: the load is done and its state already emitted,
so a Looker outage must not fail the run or make Meltano replay it. The summary is
JSON-able and belongs in `_load_runs.looker_actions`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

from ifs_looker_core import encrypted_settings
from ifs_looker_core.retry import RetryPolicy
from target_looker.looker_api import LookerAPIError, LookerClient, LookerCredentials

logger = logging.getLogger("target-looker.refresh")


class LookerSettingsError(ValueError):
    """A Looker setting of target-looker is malformed."""


def _split(value: str, separator: str, setting: str, form: str) -> tuple[str, str]:
    left, sep, right = value.partition(separator)
    if not sep or not left.strip() or not right.strip() or separator in right:
        raise LookerSettingsError(f"{setting}: {value!r} must be written {form}")
    return left.strip(), right.strip()


@dataclass(frozen=True)
class LookerSettings:
    """target-looker's Looker settings (SPEC §5.1), checked once."""

    base_url: str | None = None
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    connection_name: str | None = None
    datagroups: tuple[tuple[str, str], ...] = ()  # (model, name)
    pdts: tuple[tuple[str, str], ...] = ()  # (model, view)
    max_retries: int = 8
    max_backoff_seconds: float = 60.0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> LookerSettings:
        """From the target's config (`looker_*` keys, the secret may be `fernet:...`).

        Raises LookerSettingsError (or encrypted_settings.SecretError) on bad values.
        """
        return cls(
            base_url=config.get("looker_base_url") or None,
            client_id=config.get("looker_client_id") or None,
            client_secret=encrypted_settings.decrypt(
                "looker_client_secret", config.get("looker_client_secret") or ""
            )
            or None,
            connection_name=config.get("looker_connection_name") or None,
            datagroups=tuple(
                _split(d, "::", "looker_datagroups", "model::datagroup")
                for d in config.get("looker_datagroups") or ()
            ),
            pdts=tuple(
                _split(p, "/", "looker_pdts", "model/view") for p in config.get("looker_pdts") or ()
            ),
            max_retries=int(config.get("looker_max_retries", 8)),
            max_backoff_seconds=float(config.get("looker_max_backoff_seconds", 60.0)),
        )

    @property
    def configured(self) -> bool:
        return bool(self.base_url and self.client_id and self.client_secret)

    def credentials(self) -> LookerCredentials:
        if not self.configured:
            raise LookerSettingsError(
                "looker_base_url, looker_client_id and looker_client_secret are all required"
            )
        return LookerCredentials(str(self.base_url), str(self.client_id), str(self.client_secret))

    def client(self) -> LookerClient:
        return LookerClient(
            self.credentials(),
            policy=RetryPolicy(
                max_retries=self.max_retries, max_backoff_seconds=self.max_backoff_seconds
            ),
        )


def stale_before_now(clock: Callable[[], float] = time.time) -> int:
    """Now in whole UNIX seconds, rounded down: never in the future."""
    return math.floor(clock())


def _failure(exc: BaseException) -> str:
    if isinstance(exc, LookerAPIError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _mark_datagroups(
    client: LookerClient, wanted: Sequence[tuple[str, str]], clock: Callable[[], float]
) -> list[dict]:
    known = {(g.get("model_name"), g.get("name")): g for g in client.datagroups()}
    results = []
    for model, name in wanted:
        label = f"{model}::{name}"
        group = known.get((model, name))
        if group is None:
            names = ", ".join(sorted(f"{m}::{n}" for m, n in known)) or "none"
            results.append(
                {"datagroup": label, "status": "failed", "error": f"not found (known: {names})"}
            )
            continue
        stale_before = stale_before_now(clock)
        try:
            client.update_datagroup(group["id"], stale_before=stale_before)
        except (LookerAPIError, requests.RequestException) as exc:
            results.append({"datagroup": label, "status": "failed", "error": _failure(exc)})
            continue
        results.append(
            {"datagroup": label, "id": group["id"], "stale_before": stale_before, "status": "ok"}
        )
    return results


def _start_pdts(client: LookerClient, wanted: Sequence[tuple[str, str]]) -> list[dict]:
    results = []
    for model, view in wanted:
        label = f"{model}/{view}"
        try:
            build = client.start_pdt_build(model, view)
        except (LookerAPIError, requests.RequestException) as exc:
            results.append({"pdt": label, "status": "failed", "error": _failure(exc)})
            continue
        results.append(
            {
                "pdt": label,
                "materialization_id": build.get("materialization_id"),
                "resp_text": build.get("resp_text"),
                "status": "started",
            }
        )
    return results


def refresh_after_load(
    settings: LookerSettings,
    *,
    client: LookerClient | None = None,
    clock: Callable[[], float] = time.time,
) -> dict:
    """Mark configured datagroups stale and start configured PDT builds; never raises.

    Returns `{"status": "skipped" | "succeeded" | "failed", "datagroups": [...],
    "pdts": [...], "error"?: str}`; per-item failures make the status "failed".
    """
    if not settings.configured:
        logger.info(
            "Looker refresh skipped: looker_base_url/looker_client_id/looker_client_secret not set"
        )
        return {"status": "skipped", "reason": "Looker credentials not configured"}
    if not settings.datagroups and not settings.pdts:
        logger.info("Looker refresh skipped: no looker_datagroups or looker_pdts configured")
        return {"status": "skipped", "reason": "no datagroups or PDTs configured"}
    summary: dict[str, Any] = {"status": "succeeded", "datagroups": [], "pdts": []}
    owned = client is None
    try:
        client = client or settings.client()
        if settings.datagroups:
            summary["datagroups"] = _mark_datagroups(client, settings.datagroups, clock)
        if settings.pdts:
            summary["pdts"] = _start_pdts(client, settings.pdts)
    except (LookerAPIError, requests.RequestException) as exc:
        summary["status"] = "failed"
        summary["error"] = _failure(exc)
    finally:
        if owned and client is not None:
            client.close()
    failed = [i for i in summary["datagroups"] + summary["pdts"] if i["status"] == "failed"]
    if failed and summary["status"] == "succeeded":
        summary["status"] = "failed"
    if summary["status"] == "failed":
        logger.error(
            "Looker refresh failed (the load itself is committed): %s",
            summary.get("error") or "; ".join(f"{_label(i)}: {i['error']}" for i in failed),
        )
    else:
        logger.info(
            "Looker refresh: %d datagroup(s) marked stale, %d PDT build(s) started",
            len(summary["datagroups"]),
            len(summary["pdts"]),
        )
    return summary


def _label(item: dict) -> str:
    return item.get("datagroup") or item.get("pdt") or "?"
