# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lookup difyops.dify.constants: each shared fact comes from the module that owns it, and the
facts the roles once kept copies of say what those copies said (tests/unit/roles/test_shared_constants.py
runs the roles' variables through Ansible)."""

from __future__ import annotations

import json
import pathlib

import pytest
import yaml

from ansible.errors import AnsibleLookupError
from ansible_collections.difyops.dify.plugins.lookup.constants import LookupModule
from ansible_collections.difyops.dify.plugins.plugin_utils.stack import compose, constants, reference_1_13_3, reference_1_16_1, versions

REPO = pathlib.Path(__file__).resolve().parents[4]
FACTS = constants.constants()
# Dify 1.16.1's .env.example gives the agent backend's secret key this value (base64 of
# "0123456789abcdef0123456789abcdef"): 43 characters of base64url, so the role's format check alone
# admitted it while the role's copy of the defaults held 1.13.3's only.
AGENT_KEY_DEFAULT = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"


def load(path: pathlib.Path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_every_fact_is_plain_data():
    assert json.loads(json.dumps(FACTS)) == FACTS
    assert sorted(FACTS) == ["app_uid", "database_markers", "gateway_port", "generated_secrets", "given_only_secrets",
                             "known_default_passwords", "project_dir", "secret_formats", "secret_min_length",
                             "systemctl_show", "upstream_default_secrets"]


def test_the_secrets_are_the_stacks_generated_ones_then_the_given_only_ones():
    assert FACTS["generated_secrets"] + FACTS["given_only_secrets"] == list(compose.SECRET_VARIABLES)
    every = {name for version in versions.SUPPORTED for name in versions.secrets(version)}
    assert set(FACTS["generated_secrets"]) == every
    assert FACTS["secret_formats"] == {"DIFY_AGENT_SERVER_SECRET_KEY": "base64url32"}


def test_every_long_upstream_default_of_every_supported_version_is_refused():
    published = reference_1_13_3.DEFAULT_SECRETS | reference_1_16_1.DEFAULT_SECRETS
    values = {s for s in published if "${" not in s}
    assert set(FACTS["upstream_default_secrets"]) == {s for s in values if len(s) >= FACTS["secret_min_length"]}
    assert AGENT_KEY_DEFAULT in reference_1_16_1.DEFAULT_SECRETS
    assert AGENT_KEY_DEFAULT in FACTS["upstream_default_secrets"]
    # An interpolation repeats a default that is listed on its own.
    for interpolation in published - values:
        assert interpolation.split(":-", 1)[1].rstrip("}") in values


def test_the_known_default_passwords_are_upstreams_and_postgres():
    published = reference_1_13_3.DEFAULT_SECRETS | reference_1_16_1.DEFAULT_SECRETS
    assert set(FACTS["known_default_passwords"]) - published == {"postgres"}
    assert "difyai123456" in FACTS["known_default_passwords"]


def test_the_database_markers_are_the_stacks_data_directories():
    assert FACTS["database_markers"] == {compose.DATA_DIRS["db_postgres"] + "/PG_VERSION": "DB_PASSWORD",
                                         compose.DATA_DIRS["pgvector"] + "/PG_VERSION": "PGVECTOR_PASSWORD"}


def test_the_project_directory_and_the_gateway_port_are_dify_stacks_defaults():
    defaults = load(REPO / "roles" / "dify_stack" / "defaults" / "main.yml")
    spec = load(REPO / "roles" / "dify_stack" / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert FACTS["project_dir"] == defaults["dify_stack_project_dir"] == spec["dify_stack_project_dir"]["default"]
    assert FACTS["gateway_port"] == defaults["dify_stack_gateway_port"] == spec["dify_stack_gateway_port"]["default"] == 80
    assert FACTS["app_uid"] == compose.DIFY_UID


def test_the_lookup_answers_every_fact_or_the_named_ones():
    lookup = LookupModule()
    assert lookup.run([], variables={}) == [FACTS]
    assert lookup.run(["project_dir", "secret_min_length"], variables={}) == ["/opt/dify", 16]


def test_an_unknown_name_is_refused_with_the_known_ones():
    with pytest.raises(AnsibleLookupError, match=r"no fact named nope \(it has: app_uid, database_markers, "):
        LookupModule().run(["project_dir", "nope"], variables={})


def test_no_role_or_playbook_keeps_a_copy_of_a_shared_fact():
    copies = {"/opt/dify": "project_dir", "_port: 80\n": "gateway_port", "difyai123456": "known_default_passwords",
              "QaHbTe77CtuXmsfyhR7": "upstream_default_secrets", "PLUGIN_DIFY_INNER_API_KEY": "generated_secrets",
              "volumes/db/data": "database_markers"}
    owner = REPO / "roles" / "dify_stack" / "defaults" / "main.yml"  # dify_stack_project_dir's and _gateway_port's
    paths = sorted(REPO.glob("roles/*/defaults/main.yml")) + sorted(REPO.glob("roles/*/vars/main.yml"))
    paths += sorted((REPO / "playbooks").rglob("*.yml"))
    found = ["%s: %s (%s)" % (path.relative_to(REPO), literal, fact) for path in paths for literal, fact in copies.items()
             if literal in path.read_text(encoding="utf-8") and not (path == owner and fact in ("project_dir", "gateway_port"))]
    assert found == []


def test_systemctl_show_asks_what_systemd_unit_actions_reads():
    from ansible_collections.difyops.dify.plugins.plugin_utils.systemd import PROPERTIES, unit_actions

    argv = FACTS["systemctl_show"]
    assert argv[:2] == ["systemctl", "show"] and argv[-1] == "--"
    assert argv[2:-1:2] == ["-p"] * len(PROPERTIES) and tuple(argv[3:-1:2]) == PROPERTIES
    # Every role that asks systemd about its units asks it through this fact, never a copy.
    repo = pathlib.Path(__file__).resolve().parents[4]
    copies = [str(path.relative_to(repo)) for path in repo.glob("roles/*/tasks/*.yml")
              if "UnitFileState" in path.read_text(encoding="utf-8")]
    assert copies == []
    users = sorted(str(path.relative_to(repo)) for path in repo.glob("roles/*/tasks/*.yml")
                   if "'systemctl_show')" in path.read_text(encoding="utf-8"))
    assert users == ["roles/common/tasks/units.yml", "roles/dify_stack/tasks/firewall.yml",
                     "roles/docker_engine/tasks/preflight.yml", "roles/nginx_gateway/tasks/packages.yml",
                     "roles/postgres_tuning/tasks/preflight.yml"]
    assert unit_actions("Id=a.service\nLoadState=loaded\nActiveState=active\nUnitFileState=enabled\n", ["a"]) == []
