# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""postgres_tuning's decisions from one read of the server: real psql output of the role's state
queries (fixtures/postgres-state.json, captured from PostgreSQL 15) and SCRAM verifiers made by
that server."""

from __future__ import annotations

import copy
import json
import pathlib
import re

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.difyops.dify.plugins.filter.postgres import postgres_server_state
from ansible_collections.difyops.dify.plugins.plugin_utils.postgres import role_action, scram_matches

FIXTURE = json.loads((pathlib.Path(__file__).parent / "fixtures" / "postgres-state.json").read_text(encoding="utf-8"))
OUTPUTS = FIXTURE["outputs"]
PASSWORD = "Fixture-Password-0123456789abcdef"
HOT = {"messages": {"autovacuum_vacuum_scale_factor": 0.05},
       "workflow_runs": {"autovacuum_vacuum_scale_factor": 0.02, "autovacuum_analyze_scale_factor": 0.005},
       "conversations": {"autovacuum_vacuum_scale_factor": 0.05}}
# Made by PostgreSQL 15 (password_encryption scram-sha-256) for these passwords.
ASCII = ("pencil-Dify-2026-abcdefgh", "SCRAM-SHA-256$4096:mdOiy6aZ/GYlD3ZsGVY0Zw==$pe+wwObmONLyfQlMPLsfCzBQ6x5uU6mR5Es20qvoqyQ="
         ":z20FsZekTZkdNuaUxZS43sOvBmE8gvEEU2Pxnky716A=")
UNICODE = ("pässwört-ünïcode-ﬁ", "SCRAM-SHA-256$4096:IyNqWSBuhO7bpK78qehIuA==$AiJAXF/+xy+doU6vSTdICLT+yjdJAbB5g7e/5hwnjzw="
           ":v1eFeGq7XkHJf92HXlSS2PpILmBnlyHzHUBtg2XkmX8=")


def state(outputs=None, databases=("dify", "dify_plugin"), password=PASSWORD, extension="pg_stat_statements"):
    return postgres_server_state(OUTPUTS if outputs is None else outputs, list(databases), "dify", password,
                                 "90-difyops-dify.conf", HOT, extension)


def test_a_server_verifier_matches_its_password_only():
    assert scram_matches(ASCII[1], ASCII[0]) is True
    assert scram_matches(ASCII[1], ASCII[0] + "x") is False
    assert scram_matches(ASCII[1], "") is False
    assert scram_matches(UNICODE[1], "pässwört-ünïcode-fi") is None


@pytest.mark.parametrize("verifier", [None, "", "md5" + "0" * 32, "SCRAM-SHA-256$x", "SCRAM-SHA-256$4096:%%%$a:b",
                                      "SCRAM-SHA-256$many:bWRP$cGU=:ejI="])
def test_anything_but_a_valid_scram_verifier_differs(verifier):
    assert scram_matches(verifier, ASCII[0]) is False


def test_only_the_server_compares_a_password_that_is_not_plain_ascii():
    assert scram_matches(UNICODE[1], UNICODE[0]) is None
    role = dict(json.loads(OUTPUTS["server"]["stdout"])["role"], password=UNICODE[1])
    assert role_action(role, UNICODE[0]) == "alter"


def test_the_read_decides_everything_the_role_changes():
    found = state()
    assert found["answered"]
    assert found["cluster"] == {"config_file": "/tmp/pgv/data/postgresql.conf", "hba_file": "/tmp/pgv/data/pg_hba.conf",
                                "data_directory": "/tmp/pgv/data", "major": 15}
    assert found["conf_file"] == "/tmp/pgv/data/conf.d/90-difyops-dify.conf"
    assert found["pending_restart"] == ["shared_buffers"]
    # work_mem comes from the role's file; shared_buffers waits for a restart; the others come
    # from elsewhere (ALTER SYSTEM, postgresql.conf).
    assert found["overridden"] == [
        {"name": "maintenance_work_mem", "source": "/tmp/pgv/data/postgresql.auto.conf"},
        {"name": "max_connections", "source": "/tmp/pgv/data/postgresql.conf"}]
    assert found["role"] == ""
    assert found["databases"] == ["dify_plugin"]  # owned by postgres
    assert found["extensions"] == ["dify_plugin"]
    assert found["tables"] == {"workflow_runs": ["autovacuum_vacuum_scale_factor=0.02", "autovacuum_analyze_scale_factor=0.005"]}
    assert found["tables_missing"] == ["conversations"]


def test_a_missing_database_is_created_and_given_the_extension():
    outputs = dict(OUTPUTS, database1=OUTPUTS["database2"])
    found = state(outputs, databases=("dify", "dify_new"))
    assert found["databases"] == ["dify_new"] and found["extensions"] == ["dify_new"]
    assert found["databases_missing"] == ["dify_new"] and state()["databases_missing"] == []
    assert state(outputs, databases=("dify", "dify_new"), extension=None)["extensions"] == []


def test_the_role_is_created_or_altered_where_it_differs():
    assert state(password=PASSWORD + "-rotated")["role"] == "alter"
    server = json.loads(OUTPUTS["server"]["stdout"])
    for change in ({"role": None}, {"role": dict(server["role"], superuser=True)},
                   {"role": dict(server["role"], login=False)}):
        outputs = dict(OUTPUTS, server=dict(OUTPUTS["server"], stdout=json.dumps(dict(server, **change))))
        assert state(outputs)["role"] == ("create" if change["role"] is None else "alter")


def test_a_server_that_does_not_answer_is_only_that():
    outputs = dict(OUTPUTS, server={"rc": 127, "stdout": "", "stderr": "", "msg": "runuser: failed to execute psql"})
    assert state(outputs) == {"answered": False}


@pytest.mark.parametrize("outputs, expected", [
    ({}, "the read has no result for server"),
    ({"server": {"rc": 0, "stdout": "t", "stderr": ""}}, "server did not print a JSON document"),
    ({"server": {"rc": 0, "stdout": "[]", "stderr": ""}}, "server printed [], not a JSON object"),
    ({"server": {"rc": 0, "stdout": "{}", "stderr": ""}}, "the server's read has no config_file"),
    (dict(OUTPUTS, database1={"stdout": ""}), "the read has no result for database1"),
])
def test_a_read_that_is_not_the_queries_json_is_an_error(outputs, expected):
    with pytest.raises(AnsibleFilterError, match=re.escape(expected)):
        state(copy.deepcopy(outputs))


@pytest.mark.parametrize("args, expected", [
    (("not outputs", ["dify"], {}), "takes commands_info's outputs"),
    ((OUTPUTS, "dify", {}), "takes the databases as a list"),
    ((OUTPUTS, ["dify"], []), "takes the hot tables as a mapping"),
])
def test_arguments_of_the_wrong_shape_are_refused(args, expected):
    outputs, databases, hot = args
    with pytest.raises(AnsibleFilterError, match=expected):
        postgres_server_state(outputs, databases, "dify", PASSWORD, "90-difyops-dify.conf", hot)


def test_the_reads_name_each_database_in_order_and_read_the_hot_tables_in_the_first():
    from ansible_collections.difyops.dify.plugins.filter.postgres import postgres_state_reads
    reads = postgres_state_reads(["psql", "-XAtq"], ["dify", "dify_plugin"], "dify", ["work_mem", "shared_buffers"],
                                 ["messages", "workflow_runs"], "SERVER SQL", "DATABASE SQL")
    assert list(reads) == ["server", "database0", "database1"]
    assert reads["server"] == {"argv": ["psql", "-XAtq", "-d", "postgres", "-v", "user=dify", "-v", "databases=dify,dify_plugin",
                                        "-v", "settings=work_mem,shared_buffers"], "stdin": "SERVER SQL"}
    assert reads["database0"]["argv"][2:] == ["-d", "dify", "-v", "tables=messages,workflow_runs"]
    assert reads["database1"] == {"argv": ["psql", "-XAtq", "-d", "dify_plugin", "-v", "tables="], "stdin": "DATABASE SQL"}
    with pytest.raises(AnsibleFilterError, match="takes the databases as a list"):
        postgres_state_reads(["psql"], "dify", "dify", [], [], "", "")
