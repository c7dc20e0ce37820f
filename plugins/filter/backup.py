# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the backup and restore of a Dify deployment (documentation in the .yml files beside)."""

from __future__ import annotations

import json
import pathlib
from typing import Any, Dict, List, Mapping, Optional, Sequence

import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.difyops.dify.plugins.plugin_utils.values import plain as _plain


def collection_version(root: Optional[pathlib.Path] = None) -> str:
    """This collection's version: MANIFEST.json of an installed collection, else galaxy.yml of a checkout."""
    root = root or pathlib.Path(__file__).resolve().parents[2]
    try:
        return str(json.loads((root / "MANIFEST.json").read_text(encoding="utf-8"))["collection_info"]["version"])
    except (OSError, ValueError, KeyError):
        pass
    try:
        return str(yaml.safe_load((root / "galaxy.yml").read_text(encoding="utf-8"))["version"])
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return "unknown"


def _stats(results: Any) -> Dict[str, Dict[str, Any]]:
    """{name: {sha256, size}} from a looped stat's results (item.name, stat.checksum, stat.size) or a mapping."""
    if isinstance(results, Mapping) and "results" in results:
        results = results["results"]
    if isinstance(results, Mapping):
        return {str(k): dict(v) for k, v in results.items()}
    out = {}
    for result in results or []:
        stat = result.get("stat") or {}
        item = result.get("item")
        name = item.get("name") if isinstance(item, Mapping) else item
        if stat.get("exists") and stat.get("isreg") and stat.get("checksum"):
            out[str(name)] = {"sha256": stat["checksum"], "size": stat.get("size", 0)}
    return out


def backup_items(plan: Mapping[str, Any], host: str, project: Optional[Mapping[str, Any]] = None,
                 secrets_file: str = "") -> Dict[str, Any]:
    """What a backup of HOST holds (items), the services a restore stops (writers) and the dumps an earlier
    backup left inside a database volume (stale)."""
    from ansible_collections.difyops.dify.plugins.plugin_utils.stack import backup

    project = _plain(project or {})
    try:
        return {"items": backup.host_items(_plain(plan), str(host), project, str(secrets_file or "")),
                "writers": backup.writers(project), "stale": backup.stale_files(project)}
    except (backup.BackupError, KeyError) as exc:
        raise AnsibleFilterError("backup_items: host %s: %s" % (host, exc))


def backup_manifest(items: Sequence[Mapping[str, Any]], stats: Any, meta: Mapping[str, Any]) -> Dict[str, Any]:
    """The manifest of a backup set, with this collection's version."""
    from ansible_collections.difyops.dify.plugins.plugin_utils.stack import backup

    meta = dict(_plain(meta))
    meta.setdefault("collection", "difyops.dify")
    meta.setdefault("collection_version", collection_version())
    try:
        return backup.manifest(_plain(items), _stats(_plain(stats)), meta)
    except backup.BackupError as exc:
        raise AnsibleFilterError("backup_manifest: %s" % exc)


def backup_restore_problems(manifest: Any, stats: Any, host: str, expected: Sequence[Mapping[str, Any]] = (),
                            secrets: Optional[Mapping[str, Any]] = None) -> List[str]:
    """Why a backup set may not be restored on HOST (empty: it may)."""
    from ansible_collections.difyops.dify.plugins.plugin_utils.stack import backup

    problems = backup.manifest_problems(_plain(manifest), _stats(_plain(stats)), str(host), _plain(expected))
    if secrets:
        secrets = _plain(secrets)
        problem = backup.secret_key_problem(secrets.get("backup") or {}, secrets.get("current") or {},
                                            bool(secrets.get("take")))
        if problem:
            problems.append(problem)
    return problems


def backup_prune(names: Sequence[str], keep: int) -> List[str]:
    """The backup sets to remove, oldest first, so that the newest KEEP remain."""
    from ansible_collections.difyops.dify.plugins.plugin_utils.stack import backup

    try:
        return backup.to_prune([str(n) for n in _plain(names)], int(keep))
    except (backup.BackupError, ValueError, TypeError) as exc:
        raise AnsibleFilterError("backup_prune: %s" % exc)


class FilterModule:
    """The backup filters."""

    def filters(self):
        return {
            "backup_items": backup_items,
            "backup_manifest": backup_manifest,
            "backup_restore_problems": backup_restore_problems,
            "backup_prune": backup_prune,
        }
