# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a backup of one host holds and whether a backup set may be restored (pure Python, no
Ansible imports).

A backup set is one directory per run (``<backup dir>/<stamp>/``) holding the host's items and a
``manifest.json`` that names each file, what it is and its sha256. The items come from the fleet
plan and the host's rendered Compose project, never from paths of their own: every directory is
one of ``compose.DATA_DIRS``, every database one of ``compose.DATABASES``.

Redis is not backed up: Dify keeps caches (decrypted provider credentials among them), login
tokens, rate-limit counters and the Celery broker's queue there. After a restore those refer to a
later state than the restored database, so the restore flushes Redis instead (see the role).
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Optional, Sequence

from ..sizing.catalog import VECTOR_STORES
from ..sizing.postgres import STACK_POSTGRES_VERSIONS
from .compose import DATA_DIRS, DATABASES, DB_USER, PGVECTOR_USER

MANIFEST_FORMAT = 1
MANIFEST_NAME = "manifest.json"
# A backup set's directory name: the UTC time of the run, e.g. 20261129T043000Z.
STAMP_PATTERN = re.compile(r"^[0-9]{8}T[0-9]{6}Z$")
# Services a restore stops while it replaces the data: those that write Dify's data, and the
# single node's nginx, which resolves the api's address once at start (the api comes back on
# another one) and answers users with 502 meanwhile.
WRITERS = ("nginx", "api", "worker", "worker_beat", "plugin_daemon")
# Vector stores whose data is a directory: copied while the service is stopped (a PostgreSQL
# one, pgvector, is dumped with pg_dump instead).
FILE_VECTOR_STORES = tuple(store for store in VECTOR_STORES if store not in STACK_POSTGRES_VERSIONS)


class BackupError(ValueError):
    """An input that cannot make a backup or a restore; the message names the setting and the fix."""


def _env(project: Mapping[str, Any], service: str) -> Mapping[str, Any]:
    return project.get("services", {}).get(service, {}).get("environment", {}) or {}


def _dump(name: str, kind: str, service: Optional[str], database: str, user: str, what: str) -> Dict[str, Any]:
    return {"name": name, "kind": kind, "service": service, "database": database, "user": user, "what": what}


def host_items(plan: Mapping[str, Any], host: str, project: Mapping[str, Any], secrets_file: str = "") -> List[Dict[str, Any]]:
    """Everything a backup of HOST holds, in restore order, each {name, kind, what, ...}.

    kinds: ``pg_dump`` (a database of a Compose service: service, database, user), ``pg_dump_host``
    (a database of the host's PostgreSQL on a split fleet), ``files`` (a project-relative directory,
    path; services that use it: writers), ``stopped_files`` (a vector store's directory, copied
    while its service is stopped), ``secrets`` (the kept secrets file, path; SECRETS_FILE is given
    only for the host that keeps them), ``project`` (the project's own files: compose.yaml, .env, configuration; not volumes).

    PROJECT is the host's rendered compose.yaml as a mapping ({} when none): it says which
    services run here and whether storage is local or S3 (an S3 bucket is the store's to back up).
    """
    if host not in plan.get("hosts", {}):
        raise BackupError("host %s is not in the plan (planned: %s)" % (host, ", ".join(sorted(plan.get("hosts", {})))))
    services = project.get("services", {}) or {}
    planned = plan["hosts"][host]["services"]
    items: List[Dict[str, Any]] = []
    if "db_postgres" in services:
        items += [_dump("postgres-%s.dump" % db, "pg_dump", "db_postgres", db, DB_USER,
                        "PostgreSQL database %s (db_postgres), pg_dump custom format" % db) for db in DATABASES]
    elif "db_postgres" in planned and not plan["fleet"]["single_node"]:
        items += [_dump("postgres-%s.dump" % db, "pg_dump_host", None, db, DB_USER,
                        "PostgreSQL database %s (the host's server), pg_dump custom format" % db) for db in DATABASES]
    if "pgvector" in services:
        items.append(_dump("pgvector-dify.dump", "pg_dump", "pgvector", "dify", PGVECTOR_USER,
                           "the vector store: pgvector database dify, pg_dump custom format"))
    for store in FILE_VECTOR_STORES:
        if store in services:
            items.append({"name": "%s.tar.gz" % store, "kind": "stopped_files", "service": store, "path": DATA_DIRS[store],
                          "writers": [store], "what": "the vector store: %s's data directory, copied while it was stopped" % store})
    if "api" in services and str(_env(project, "api").get("STORAGE_TYPE", "")) != "s3":
        users = [s for s in ("api", "worker") if s in services]
        items.append({"name": "storage.tar.gz", "kind": "files", "path": DATA_DIRS["api"], "writers": users,
                      "what": "Dify's storage: uploaded files, the tenants' private keys (privkeys/), generated files"})
    if "plugin_daemon" in services and str(_env(project, "plugin_daemon").get("PLUGIN_STORAGE_TYPE", "")) == "local":
        items.append({"name": "plugin_daemon.tar.gz", "kind": "files", "path": DATA_DIRS["plugin_daemon"],
                      "writers": ["plugin_daemon"], "what": "the plugin daemon's storage: installed plugins and their files"})
    if secrets_file:
        items.append({"name": "secrets.json", "kind": "secrets", "path": secrets_file,
                      "what": "the deployment's secrets (SECRET_KEY among them), mode 0600"})
    if services:
        items.append({"name": "project.tar.gz", "kind": "project", "exclude": "volumes",
                      "what": "the Compose project's files (compose.yaml, .env, configuration), for reference: "
                              "the restore renders them again from the plan"})
    return items


def writers(project: Mapping[str, Any]) -> List[str]:
    """The services of PROJECT that a restore stops while it replaces the data (WRITERS)."""
    services = project.get("services", {}) or {}
    return [s for s in WRITERS if s in services]


def stale_files(project: Mapping[str, Any]) -> List[str]:
    """Project-relative dumps that the collection's backup playbook before 0.2 wrote inside
    db_postgres's volume (world-readable, and copied with the volume): removed by the next backup."""
    if "db_postgres" not in (project.get("services", {}) or {}):
        return []
    return ["%s/%s.dump" % (DATA_DIRS["db_postgres"], db) for db in DATABASES]


def manifest(items: Sequence[Mapping[str, Any]], checksums: Mapping[str, Mapping[str, Any]], meta: Mapping[str, Any]) -> Dict[str, Any]:
    """The manifest of a backup set: META (host, stamp, versions) and every item with its size and sha256.

    CHECKSUMS maps each item's name to {sha256, size}; an item without one is refused."""
    missing = [item["name"] for item in items if not (checksums.get(item["name"]) or {}).get("sha256")]
    if missing:
        raise BackupError("no checksum for %s: the backup did not write them" % ", ".join(missing))
    files = []
    for item in items:
        entry = {k: v for k, v in item.items() if v is not None}
        entry.update(sha256=str(checksums[item["name"]]["sha256"]), size=int(checksums[item["name"]].get("size", 0)))
        files.append(entry)
    document = {"format": MANIFEST_FORMAT}
    document.update(meta)
    document["files"] = files
    return document


def manifest_problems(document: Any, checksums: Mapping[str, Mapping[str, Any]], host: str,
                      expected: Sequence[Mapping[str, Any]] = ()) -> List[str]:
    """Why a backup set may not be restored on HOST; empty when it may.

    CHECKSUMS maps the names of the files found in the set to {sha256} (absent: not found).
    EXPECTED are the items a backup of this host holds now (host_items): a set that lacks one
    would restore the deployment in part, and is refused."""
    if not isinstance(document, Mapping):
        return ["manifest.json is not a JSON object"]
    problems = []
    if document.get("format") != MANIFEST_FORMAT:
        problems.append("manifest format %r, this collection reads %d" % (document.get("format"), MANIFEST_FORMAT))
    if document.get("host") != host:
        problems.append("the set was made on host %r, not %s: restore each host from its own set" % (document.get("host"), host))
    files = document.get("files")
    if not isinstance(files, list) or not all(isinstance(f, Mapping) and f.get("name") and f.get("sha256") for f in files):
        return problems + ["manifest.json lists no files with name and sha256"]
    for entry in files:
        name = str(entry["name"])
        if "/" in name or name in (".", ".."):
            problems.append("%s: not a file name of the set" % name)
            continue
        found = checksums.get(name)
        if not found or not found.get("sha256"):
            problems.append("%s (%s) is missing from the set" % (name, entry.get("what", entry.get("kind"))))
        elif str(found["sha256"]) != str(entry["sha256"]):
            problems.append("%s: sha256 %s, the manifest says %s: the file changed after the backup"
                            % (name, found["sha256"], entry["sha256"]))
    listed = {str(f["name"]) for f in files}
    for item in expected:
        if item["name"] not in listed and item["kind"] != "project":
            problems.append("%s (%s) is not in the set, and this host's plan needs it" % (item["name"], item["what"]))
    return problems


def to_prune(names: Sequence[str], keep: int) -> List[str]:
    """The backup sets to remove so that the newest KEEP remain: only names that are stamps
    (STAMP_PATTERN), oldest first; anything else in the directory is left alone."""
    if int(keep) < 1:
        raise BackupError("dify_backup_keep must be at least 1 (the set just made), got %r" % (keep,))
    stamps = sorted(n for n in set(names) if STAMP_PATTERN.match(str(n)))
    return stamps[:max(0, len(stamps) - int(keep))]


def secret_key_problem(backup: Mapping[str, Any], current: Mapping[str, Any], take_backup: bool) -> Optional[str]:
    """Why the backup's secrets cannot be restored beside the ones in use, or None.

    Data encrypted with one SECRET_KEY cannot be read with another: a restore never silently
    rotates it. When they differ, the restore refuses unless told to put the backup's secrets back
    (TAKE_BACKUP: dify_backup_restore_secrets). Never returns a secret's value."""
    ours, theirs = current.get("SECRET_KEY"), backup.get("SECRET_KEY")
    if not theirs:
        return "the set's secrets hold no SECRET_KEY"
    if not ours or ours == theirs or take_backup:
        return None
    return ("the set's SECRET_KEY differs from the one in use: the restored data was encrypted with the set's. "
            "Set dify_backup_restore_secrets: true to put the set's secrets back (the stack is then rendered with them), "
            "or restore a set made with the key in use")
