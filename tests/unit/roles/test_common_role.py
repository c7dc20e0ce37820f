# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The internal role common, run by ansible-playbook on the controller in check mode: applied on
its own it refuses; its platform entry point refuses an unsupported distribution or architecture
naming the host, the calling role and what is supported, and publishes the platform otherwise; its
apt_repository entry point reports, in check mode on a host without the repository tools, what a
real run would install, and refuses an include that lacks a required input. Nothing is written:
the only command run on the controller is apt-cache show."""

from __future__ import annotations

import pathlib
import sys

import pytest
import yaml

from playbook_runner import run_playbook

ROLES = pathlib.Path(__file__).resolve().parents[3] / "roles"
SUPPORTED = {"Debian": ["1"], "Ubuntu": ["2.04"], "RedHat": ["3"]}
ARCHES = {"x86_64": "amd64", "aarch64": "arm64"}
REPOSITORY = {"common_apt_repository_name": "example", "common_apt_repository_uris": ["https://apt.example.test/debian"],
              "common_apt_repository_suites": ["stable"], "common_apt_repository_components": ["main"],
              "common_apt_repository_signed_by": "https://apt.example.test/key.asc", "common_apt_repository_package": "example"}

# host: its variables (test_case says which entry point it includes; apt_repository's inputs are host variables)
HOSTS = {
    "refused": {"test_case": "platform", "test_own_platform": False},
    "accepted": {"test_case": "platform", "test_own_platform": True, "test_arches": {"x86_64": "amd64", "aarch64": "arm64", "ppc64le": "ppc64el"}},
    "no_arch": {"test_case": "platform", "test_own_platform": True, "test_arches": {"sparc64": "sparc"}},
    "tools_missing": dict(REPOSITORY, test_case="apt", common_apt_repository_installed=[]),
    "debian_missing": dict(REPOSITORY, test_case="apt", common_apt_repository_installed=["ca-certificates"]),
    "unnamed": dict({k: v for k, v in REPOSITORY.items() if k != "common_apt_repository_name"}, test_case="apt"),
}

PLAYBOOK = [
    {
        "name": "Include the entry points of common",
        "hosts": "all:!alone",
        "gather_facts": False,
        # In the play, not the inventory, whose keys the runner sorts: the refusal lists them in order.
        "vars": {"test_supported": SUPPORTED, "test_supported_arches": ARCHES},
        "tasks": [
            {"name": "Gather the platform facts", "ansible.builtin.setup": {"gather_subset": ["!all"]}},
            # The host's own platform, named the way the platform entry point names it.
            {"name": "Support this host's own platform, or only the test's versions",
             "ansible.builtin.set_fact": {"test_versions": (
                 "{{ {('RedHat' if ansible_facts.os_family == 'RedHat' else ansible_facts.distribution):"
                 " [ansible_facts.distribution_version if ansible_facts.distribution == 'Ubuntu'"
                 " else ansible_facts.distribution_major_version]} if test_own_platform else test_supported }}")},
             "when": "test_case == 'platform'"},
            {"name": "Check the platform", "ansible.builtin.include_role": {"name": "difyops.dify.common", "tasks_from": "platform"},
             "vars": {"common_platform_role": "difyops.dify.test_caller", "common_platform_versions": "{{ test_versions }}",
                      "common_platform_architectures": "{{ test_arches | default(test_supported_arches) }}"},
             "when": "test_case == 'platform'"},
            {"name": "Add the repository", "ansible.builtin.include_role": {"name": "difyops.dify.common", "tasks_from": "apt_repository"},
             "when": "test_case == 'apt'"},
            {"name": "Show what the entry points returned",
             "ansible.builtin.debug": {"msg": {"platform": "{{ common_platform | default(None) }}",
                                               "repository": "{{ common_apt_repository_result | default(None) }}"}}},
        ],
    },
    {"name": "Apply common on its own", "hosts": "alone", "gather_facts": False, "roles": [{"role": "difyops.dify.common"}]},
]


@pytest.fixture(scope="module", name="outcome")
def outcome_fixture(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("common_role")
    base = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    hosts = {name: dict(base, **variables) for name, variables in HOSTS.items()}
    hosts["alone"] = dict(base)
    _proc, report = run_playbook(tmp_path, {"all": {"hosts": hosts}}, PLAYBOOK, check=True)
    failed, messages, shown = {}, {}, {}
    for play in report["plays"]:
        for task in play["tasks"]:
            name = task["task"]["name"].split(" : ")[-1]
            for host, result in task["hosts"].items():
                if result.get("failed"):
                    failed[host] = (name, result.get("msg", ""))
                if name == "Report the repository that check mode cannot simulate" and not result.get("skipped"):
                    messages[host] = result.get("msg", "")
                if name == "Show what the entry points returned":
                    shown[host] = result["msg"]
    return failed, messages, shown


def test_common_refuses_to_run_on_its_own(outcome):
    failed, _messages, _shown = outcome
    task, message = failed["alone"]
    assert task == "Refuse to run on its own"
    assert "difyops.dify.common only holds shared task files for the collection's roles to include with" in message
    assert "tasks_from (apt_repository, platform, units)" in message


def test_an_unsupported_version_is_refused_naming_the_host_the_role_and_the_platforms(outcome):
    failed, _messages, shown = outcome
    task, message = failed["refused"]
    assert task == "Check the distribution and the architecture"
    assert message.startswith("host refused: ") and "is not supported by difyops.dify.test_caller." in message, message
    assert message.endswith("Supported: Debian 1, Ubuntu 2.04 and the RHEL family 3, on x86_64 or aarch64."), message
    assert "refused" not in shown


def test_an_unsupported_architecture_is_refused(outcome):
    failed, _messages, _shown = outcome
    task, message = failed["no_arch"]
    assert task == "Check the distribution and the architecture"
    assert message.startswith("host no_arch: ") and message.endswith(", on sparc64."), message


def test_a_supported_platform_is_published(outcome):
    failed, _messages, shown = outcome
    assert "accepted" not in failed, failed.get("accepted")
    platform = shown["accepted"]["platform"]
    assert platform["supported"] is True
    assert platform["arch"] in ("amd64", "arm64", "ppc64el")
    assert platform["name"].count("-") >= 1


@pytest.mark.parametrize("host, missing", [("tools_missing", "ca-certificates, python3-debian"), ("debian_missing", "python3-debian")])
def test_check_mode_reports_the_repository_without_its_tools(outcome, host, missing):
    failed, messages, shown = outcome
    assert host not in failed, failed.get(host)
    assert messages[host] == "Check mode: %s and then the repository would be installed." % missing
    assert shown[host]["repository"]["skipped"] is True


def test_an_include_without_a_required_input_is_refused_by_the_argument_spec(outcome):
    failed, _messages, _shown = outcome
    task, message = failed["unnamed"]
    assert task.startswith("Validating arguments against arg spec 'apt_repository'"), task
    assert "common_apt_repository_name" in message, message


def _includes():
    """(role, file, tasks_from) of every include_role/import_role of a collection role in the roles' tasks."""
    for path in sorted(ROLES.glob("*/tasks/*.yml")):
        stack = list(yaml.safe_load(path.read_text(encoding="utf-8")) or [])
        while stack:
            task = stack.pop()
            if not isinstance(task, dict):
                continue
            for key in ("block", "rescue", "always"):
                stack.extend(task.get(key) or [])
            for action in ("ansible.builtin.include_role", "ansible.builtin.import_role"):
                spec = task.get(action)
                if isinstance(spec, dict) and str(spec.get("name", "")).startswith("difyops.dify.") and "tasks_from" in spec:
                    yield path.parts[-3], path.name, spec["name"].split(".")[-1], spec["tasks_from"]


def test_roles_include_common_by_its_entry_points():
    """tasks_from names an entry point of the target's argument specs (without .yml, or Ansible
    validates nothing), so every include of a shared task file has its inputs checked."""
    includes = list(_includes())
    assert {(role, target, entry) for role, _file, target, entry in includes} >= {
        ("docker_engine", "common", "platform"), ("docker_engine", "common", "apt_repository"),
        ("nvidia_container_toolkit", "common", "platform"), ("nvidia_container_toolkit", "common", "apt_repository"),
        ("host_tuning", "common", "units"), ("monitoring", "common", "units")}
    for role, path, target, entry in includes:
        specs = yaml.safe_load((ROLES / target / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))["argument_specs"]
        assert entry in specs, "%s/tasks/%s includes %s with tasks_from %s, which is no entry point of its argument specs" % (
            role, path, target, entry)
        assert (ROLES / target / "tasks" / (entry + ".yml")).is_file()
