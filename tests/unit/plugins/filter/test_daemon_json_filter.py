# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""daemon_json_problem: host_tuning's preflight checks daemon.json from the content paths_info read,
with the message docker_daemon_json itself fails with, so the check costs no call of its own."""

from __future__ import annotations

import base64
import json

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.difyops.dify.plugins.filter.daemon_json import daemon_json_merge, daemon_json_problem
from ansible_collections.difyops.dify.plugins.module_utils.daemon_json import DaemonJsonError, load, merge


def b64(text: bytes) -> str:
    return base64.b64encode(text).decode("ascii")


@pytest.mark.parametrize("content", [None, b64(b""), b64(b"  \n"), b64(b'{"log-driver": "json-file"}\n')],
                         ids=["no-file", "empty", "blank", "object"])
def test_a_file_the_module_can_merge_into_has_no_problem(content):
    assert daemon_json_problem(content, "/etc/docker/daemon.json") == ""


@pytest.mark.parametrize("text", [b'{"log-driver": "json-file",}', b'["a"]'], ids=["invalid", "not-an-object"])
def test_the_problem_is_the_modules_own_message(text):
    with pytest.raises(DaemonJsonError) as raised:
        load(text.decode(), "/etc/docker/broken.json")
    assert daemon_json_problem(b64(text), "/etc/docker/broken.json") == str(raised.value)
    assert str(raised.value).startswith("/etc/docker/broken.json ")


def test_the_invalid_json_message_says_where():
    # A missing value: Python 3.11 and 3.13 place it alike (a trailing comma they do not).
    assert daemon_json_problem(b64(b'{"log-driver": }'), "/etc/docker/broken.json").startswith(
        "/etc/docker/broken.json is not valid JSON at line 1, column 16: Expecting value.")


def test_text_that_is_not_utf8_and_content_that_is_not_base64():
    assert daemon_json_problem(b64(b"\xff\xfe{}"), "/etc/docker/daemon.json") == (
        "/etc/docker/daemon.json is not UTF-8 text; fix or remove the file, nothing was changed")
    with pytest.raises(AnsibleFilterError, match="takes base64 content"):
        daemon_json_problem("not base64!", "/etc/docker/daemon.json")
    with pytest.raises(AnsibleFilterError, match="takes the base64 content paths_info read"):
        daemon_json_problem({"a": 1})


# daemon_json_merge: host_tuning calls docker_daemon_json only when this says the merge changes the
# file, so it must agree with the module on every case, foreign keys included.
SETTINGS = {"log-driver": "json-file", "log-opts": {"max-size": "50m", "max-file": "5"}, "live-restore": True,
            "default-ulimits": {"nofile": {"Name": "nofile", "Soft": 65536, "Hard": 65536}}}


def test_no_file_or_an_empty_one_changes():
    for content in (None, b64(b""), b64(b"\n")):
        outcome = daemon_json_merge(content, SETTINGS)
        assert outcome == {"config": SETTINGS, "differs": True}


def test_a_file_that_holds_the_settings_and_foreign_keys_does_not_change():
    current = dict(SETTINGS, **{"runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}})
    current["log-opts"] = dict(SETTINGS["log-opts"], compress="true")
    content = b64(json.dumps(current, indent=4).encode())
    assert daemon_json_merge(content, SETTINGS) == {"config": current, "differs": False}
    assert daemon_json_merge(content, SETTINGS, []) == daemon_json_merge(content, SETTINGS)


@pytest.mark.parametrize("drift", [{"live-restore": False}, {"log-opts": {"max-size": "10m", "max-file": "5"}},
                                   {"default-ulimits": {"nofile": {"Name": "nofile", "Soft": 1024, "Hard": 65536}}}],
                         ids=["flag", "nested-value", "deeper-value"])
def test_a_drifted_value_changes_and_is_merged_back(drift):
    current = dict(SETTINGS, **drift)
    outcome = daemon_json_merge(b64(json.dumps(current).encode()), SETTINGS)
    assert outcome["differs"] is True
    assert outcome["config"] == SETTINGS


def test_the_outcome_is_the_modules_merge_and_comparison():
    current = {"cgroup-parent": "old.slice", "log-opts": {"mode": "non-blocking"}, "data-root": "/srv/docker"}
    outcome = daemon_json_merge(b64(json.dumps(current).encode()), SETTINGS, ["cgroup-parent"])
    assert outcome["config"] == merge(current, SETTINGS, ["cgroup-parent"])
    assert outcome["differs"] is True
    assert daemon_json_merge(b64(json.dumps(outcome["config"]).encode()), SETTINGS, ["cgroup-parent"])["differs"] is False


def test_a_file_the_module_cannot_merge_into_is_an_error_with_its_message():
    with pytest.raises(AnsibleFilterError, match=r"^daemon.json is not valid JSON at line 1, column 16"):
        daemon_json_merge(b64(b'{"log-driver": }'), SETTINGS)
    with pytest.raises(AnsibleFilterError, match="not UTF-8 text"):
        daemon_json_merge(b64(b"\xff\xfe{}"), SETTINGS)
    with pytest.raises(AnsibleFilterError, match="settings as a mapping"):
        daemon_json_merge(None, ["log-driver"])
    with pytest.raises(AnsibleFilterError, match="keys to remove as a list"):
        daemon_json_merge(None, SETTINGS, "cgroup-parent")
