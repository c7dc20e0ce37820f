# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a backup of each host holds (from real plans and projects), the manifest, the restore's
refusals and the retention (issue 18, item 9)."""

from __future__ import annotations

import datetime
import pathlib

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from ansible.errors import AnsibleFilterError
from ansible_collections.difyops.dify.plugins.filter import backup as backup_filter
from ansible_collections.difyops.dify.plugins.filter.compose import compose_project
from ansible_collections.difyops.dify.plugins.plugin_utils.stack import backup
from ansible_collections.difyops.dify.plugins.plugin_utils.stack.compose import DATA_DIRS
import stack_plans

REPO = pathlib.Path(__file__).resolve().parents[5]
SECRETS = "/etc/difyops/dify-secrets.json"
S3 = {"endpoint": "https://s3.example", "bucket": "dify"}


def single(vector_store="pgvector"):
    return stack_plans.single(vector_store=vector_store)


def fleet(vector_store="pgvector"):
    return stack_plans.split(vector_store=vector_store)


def project(plan, host, storage=None):
    return compose_project(plan, host, {"object_storage": storage or {}})["compose"]


def items(plan, host, storage=None, keeper=None):
    """What HOST backs up; KEEPER holds the secrets file (default: the only host, or app1)."""
    keeper = keeper or ("app1" if "app1" in plan["hosts"] else host)
    return backup.host_items(plan, host, project(plan, host, storage), SECRETS if host == keeper else "")


def names(found):
    return [item["name"] for item in found]


def test_single_node_backs_up_both_databases_the_vector_store_storage_plugins_and_secrets():
    plan = single()
    found = items(plan, "one")
    assert names(found) == ["postgres-dify.dump", "postgres-dify_plugin.dump", "pgvector-dify.dump", "storage.tar.gz",
                            "plugin_daemon.tar.gz", "secrets.json", "project.tar.gz"]
    by_name = {item["name"]: item for item in found}
    # The storage holds the uploads and the tenants' private keys: the api's volume, from compose.DATA_DIRS.
    assert by_name["storage.tar.gz"]["path"] == DATA_DIRS["api"]
    assert "privkeys" in by_name["storage.tar.gz"]["what"]
    assert by_name["plugin_daemon.tar.gz"]["path"] == DATA_DIRS["plugin_daemon"]
    assert by_name["pgvector-dify.dump"] == {"name": "pgvector-dify.dump", "kind": "pg_dump", "service": "pgvector",
                                             "database": "dify", "user": "postgres", "what": by_name["pgvector-dify.dump"]["what"]}
    assert by_name["postgres-dify.dump"]["service"] == "db_postgres" and by_name["postgres-dify.dump"]["user"] == "dify"
    assert by_name["secrets.json"]["path"] == SECRETS
    assert by_name["project.tar.gz"]["exclude"] == "volumes"


def test_no_item_writes_into_a_data_volume():
    """The old playbook wrote pg_dump's files into volumes/db/data: every item is a plain file name of the set."""
    for plan, hosts in ((single(), ["one"]), (fleet(), ["gw", "app1", "app2", "data"])):
        for host in hosts:
            for item in items(plan, host, S3 if host != "one" else None):
                assert "/" not in item["name"]


def test_a_backup_removes_the_dumps_the_old_playbook_left_in_the_database_volume():
    assert backup.stale_files(project(single(), "one")) == ["volumes/db/data/dify.dump", "volumes/db/data/dify_plugin.dump"]
    assert backup.stale_files(project(fleet(), "data", S3)) == []


def test_split_fleet_dumps_the_host_postgres_and_the_pgvector_container():
    plan = fleet()
    data = items(plan, "data", S3)
    assert names(data) == ["postgres-dify.dump", "postgres-dify_plugin.dump", "pgvector-dify.dump", "project.tar.gz"]
    assert {item["kind"] for item in data if item["name"].startswith("postgres-")} == {"pg_dump_host"}
    assert [item["service"] for item in data if item["name"] == "pgvector-dify.dump"] == ["pgvector"]


def test_split_fleet_app_hosts_keep_storage_in_s3_and_the_secrets_on_their_keeper_only():
    plan = fleet()
    first, second = plan["fleet"]["migration_host"], ({"app1", "app2"} - {plan["fleet"]["migration_host"]}).pop()
    assert names(items(plan, first, S3, keeper=first)) == ["secrets.json", "project.tar.gz"]
    assert names(items(plan, second, S3, keeper=first)) == ["project.tar.gz"]
    # The keeper is wherever the secrets are kept, not the migration host.
    assert names(items(plan, first, S3, keeper=second)) == ["project.tar.gz"]
    assert names(items(plan, second, S3, keeper=second)) == ["secrets.json", "project.tar.gz"]
    assert backup.writers(project(plan, first, S3)) == ["api", "worker", "worker_beat", "plugin_daemon"]
    assert backup.writers(project(plan, "gw", S3)) == []  # the gateway's nginx runs on the host there
    assert backup.writers(project(plan, second, S3)) == ["api", "worker"]
    assert names(items(plan, "gw", S3)) == []


@pytest.mark.parametrize("store", ["weaviate", "qdrant"])
def test_file_vector_stores_are_copied_while_stopped(store):
    found = {item["name"]: item for item in items(single(store), "one")}
    assert found["%s.tar.gz" % store]["kind"] == "stopped_files"
    assert found["%s.tar.gz" % store]["path"] == DATA_DIRS[store]
    assert "pgvector-dify.dump" not in found


def test_a_host_without_a_project_backs_up_only_its_secrets():
    plan = single()
    assert names(backup.host_items(plan, "one", {}, SECRETS)) == ["secrets.json"]
    with pytest.raises(backup.BackupError, match="not in the plan"):
        backup.host_items(plan, "elsewhere", {})


def _checksums(found, **changed):
    sums = {item["name"]: {"sha256": "%064x" % index, "size": index} for index, item in enumerate(found, 1)}
    sums.update(changed)
    return sums


def test_manifest_records_every_file_and_a_clean_set_restores():
    found = items(single(), "one")
    sums = _checksums(found)
    document = backup.manifest(found, sums, {"host": "one", "stamp": "20261129T043000Z"})
    assert document["format"] == backup.MANIFEST_FORMAT and document["host"] == "one"
    assert [f["sha256"] for f in document["files"]] == [sums[i["name"]]["sha256"] for i in found]
    assert backup.manifest_problems(document, sums, "one", found) == []
    with pytest.raises(backup.BackupError, match="storage.tar.gz"):
        backup.manifest(found, {k: v for k, v in sums.items() if k != "storage.tar.gz"}, {"host": "one"})


def test_restore_refuses_a_changed_missing_foreign_or_incomplete_set():
    found = items(single(), "one")
    sums = _checksums(found)
    document = backup.manifest(found, sums, {"host": "one"})
    changed = dict(sums, **{"postgres-dify.dump": {"sha256": "0" * 64}})
    assert backup.manifest_problems(document, changed, "one", found) == [
        "postgres-dify.dump: sha256 %s, the manifest says %s: the file changed after the backup" % ("0" * 64, sums["postgres-dify.dump"]["sha256"])]
    missing = {k: v for k, v in sums.items() if k != "storage.tar.gz"}
    assert backup.manifest_problems(document, missing, "one", found)[0].startswith("storage.tar.gz (Dify's storage")
    assert "made on host 'one', not two" in backup.manifest_problems(document, sums, "two", found)[0]
    # A set without the plugin storage is refused on a host whose plan has it.
    partial = backup.manifest([i for i in found if i["name"] != "plugin_daemon.tar.gz"], sums, {"host": "one"})
    assert backup.manifest_problems(partial, sums, "one", found) == [
        "plugin_daemon.tar.gz (the plugin daemon's storage: installed plugins and their files) is not in the set, "
        "and this host's plan needs it"]
    assert backup.manifest_problems([], sums, "one") == ["manifest.json is not a JSON object"]
    assert backup.manifest_problems({"format": 1, "host": "one", "files": [{"name": "../x", "sha256": "a"}]}, {}, "one") == [
        "../x: not a file name of the set"]


def test_secret_key_is_never_rotated_silently():
    assert backup.secret_key_problem({"SECRET_KEY": "a"}, {"SECRET_KEY": "a"}, False) is None
    assert backup.secret_key_problem({"SECRET_KEY": "a"}, {}, False) is None  # nothing kept yet: the set's go back
    problem = backup.secret_key_problem({"SECRET_KEY": "set-key-0123"}, {"SECRET_KEY": "used-key-4567"}, False)
    assert "dify_backup_restore_secrets" in problem
    assert "set-key-0123" not in problem and "used-key-4567" not in problem
    assert backup.secret_key_problem({"SECRET_KEY": "a"}, {"SECRET_KEY": "b"}, True) is None
    assert backup.secret_key_problem({}, {"SECRET_KEY": "b"}, True) == "the set's secrets hold no SECRET_KEY"


def test_retention_keeps_the_newest_stamps_and_leaves_other_names():
    present = ["20261127T030000Z", "20261129T030000Z", "20261128T030000Z", "notes", "20261129T030000Z.partial"]
    assert backup.to_prune(present, 2) == ["20261127T030000Z"]
    assert backup.to_prune(present, 1) == ["20261127T030000Z", "20261128T030000Z"]
    assert backup.to_prune(present, 7) == []
    with pytest.raises(backup.BackupError, match="dify_backup_keep"):
        backup.to_prune(present, 0)


@given(st.sets(st.datetimes(min_value=datetime.datetime(2000, 1, 1)), max_size=12), st.integers(min_value=1, max_value=10))
def test_retention_property(times, keep):
    stamps = [t.strftime("%Y%m%dT%H%M%SZ") for t in times]
    pruned = backup.to_prune(stamps + ["other"], keep)
    kept = sorted(set(stamps) - set(pruned))
    assert len(kept) == min(keep, len(set(stamps)))
    assert not pruned or max(pruned) < min(kept)


def test_filters_wrap_the_module_and_read_the_collection_version():
    plan = single()
    result = backup_filter.backup_items(plan, "one", project(plan, "one"), SECRETS)
    assert result["writers"] == ["nginx", "api", "worker", "worker_beat", "plugin_daemon"]
    stat_results = {"results": [{"item": item, "stat": {"exists": True, "isreg": True, "checksum": "ab" * 32, "size": 3}}
                                for item in result["items"]]}
    document = backup_filter.backup_manifest(result["items"], stat_results, {"host": "one"})
    galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text(encoding="utf-8"))
    assert document["collection_version"] == galaxy["version"] == backup_filter.collection_version()
    looped = {"results": [{"item": f["name"], "stat": {"exists": True, "isreg": True, "checksum": "ab" * 32}} for f in document["files"]]}
    assert backup_filter.backup_restore_problems(document, looped, "one", result["items"]) == []
    assert backup_filter.backup_restore_problems(document, looped, "one", result["items"],
                                                 {"backup": {"SECRET_KEY": "x"}, "current": {"SECRET_KEY": "y"}, "take": False})
    assert backup_filter.backup_prune(["20261127T030000Z", "20261128T030000Z"], 1) == ["20261127T030000Z"]
    with pytest.raises(AnsibleFilterError, match="backup_prune"):
        backup_filter.backup_prune([], 0)
    with pytest.raises(AnsibleFilterError, match="host nowhere"):
        backup_filter.backup_items(plan, "nowhere")
