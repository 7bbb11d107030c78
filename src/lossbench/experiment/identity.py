"""Run identity: the hashes that decide whether two runs computed the same thing.

* :func:`config_hash` (tag ``config_hash``): everything that can change a run's result. A job whose
  exact config already has a FINISHED run is skipped (:func:`find_finished_run`), and ``resume=true``
  finds the run it continues by it.
* :func:`system_hash` (tag ``system_hash``): the same without the seed; ``pipeline.compare`` pools the
  runs of one system over seeds.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from omegaconf import DictConfig, OmegaConf

IGNORED_FOR_HASH = ("tracking", "paths", "hydra", "resume", "checkpoint")
"""Top-level keys that say where a run is logged, stored or resumed from, never what it computes."""
IGNORED_SETTINGS_FOR_HASH = (("data", "token_cache_mib"),)
"""``(group, key)`` settings that change how fast a run computes, never what (so adding one keeps
the hashes of earlier runs)."""


OFF_SETTINGS_FOR_HASH: tuple[tuple[tuple[str, ...], Any], ...] = (
    (("grad_cache", "chunk_size"), None),
    (("loss", "function", "false_negative_margin"), None),
    (("loss", "function", "false_negative_margin_type"), "absolute"),
)
"""``(path, value)`` settings added after runs were logged: at ``value`` (off) they compute what
the runs before them computed, so they are left out of the hash (a node they empty goes too)."""


def _without(node: Any, path: tuple[str, ...], off: Any) -> Any:
    """``node`` without the setting at ``path`` when it equals ``off`` (and a node it empties)."""
    key, *rest = path
    if not isinstance(node, dict) or key not in node:
        return node
    if rest:
        child = _without(node[key], tuple(rest), off)
        if child or not isinstance(child, dict):
            return {**node, key: child}
    elif node[key] != off:
        return node
    return {k: v for k, v in node.items() if k != key}


def _hashed(resolved: dict[Any, Any], ignored: tuple[str, ...]) -> dict[Any, Any]:
    kept = {k: v for k, v in resolved.items() if k not in ignored}
    for group, key in IGNORED_SETTINGS_FOR_HASH:
        if isinstance(kept.get(group), dict) and key in kept[group]:
            kept[group] = {k: v for k, v in kept[group].items() if k != key}
    for path, off in OFF_SETTINGS_FOR_HASH:
        kept = _without(kept, path, off)
    return kept


def digest(payload: Any) -> str:
    """The first 16 hex digits of the SHA-256 of ``payload`` as canonical JSON (sorted keys)."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def config_hash(cfg: DictConfig) -> str:
    """A short hash of everything that can change a run's result (not where it is logged or stored)."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(resolved, dict)
    return digest(_hashed(resolved, IGNORED_FOR_HASH))


def system_hash(cfg: DictConfig) -> str:
    """:func:`config_hash` without the seed: runs that differ only by seed are one system."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(resolved, dict)
    return digest(_hashed(resolved, (*IGNORED_FOR_HASH, "seed")))


def find_finished_run(client: Any, experiment_id: str, config_digest: str) -> Any | None:
    """The most recent FINISHED run of the experiment with this config hash, or None."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.config_hash = '{config_digest}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None
