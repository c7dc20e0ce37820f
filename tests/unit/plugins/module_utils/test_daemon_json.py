# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""daemon.json: merge decisions and the nvidia runtime check (present / absent / default / malformed)."""

from __future__ import annotations

import json
import sys

import pytest

from ansible_collections.difyops.dify.plugins.module_utils.daemon_json import (
    DaemonJsonError, load, merge, render, runtime_state)

# What `nvidia-ctk runtime configure --runtime=docker --set-as-default` leaves behind.
NVIDIA = {"default-runtime": "nvidia",
          "runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}}}


def test_absent_and_blank_files_are_empty_configurations():
    assert load(None) == {} and load("  \n") == {}


# Python 3.13 reports a trailing comma at the comma (column 22), earlier versions after it (23).
@pytest.mark.parametrize("text, where", [
    ('{"live-restore": true,}', "line 1, column 2" + ("2" if sys.version_info >= (3, 13) else "3")),
    ('{"a": 1}\n{"b": 2}', "line 2, column 1"),
])
def test_malformed_json_says_where(text, where):
    with pytest.raises(DaemonJsonError) as exc:
        load(text, "/etc/docker/daemon.json")
    assert str(exc.value).startswith("/etc/docker/daemon.json is not valid JSON at %s" % where)
    assert "nothing was changed" in str(exc.value)


def test_a_json_list_is_not_a_configuration():
    with pytest.raises(DaemonJsonError, match="holds a JSON list, not an object"):
        load("[]")


def test_merge_keeps_foreign_keys_and_merges_objects():
    current = dict(NVIDIA, **{"log-opts": {"labels": "team"}, "data-root": "/data/docker"})
    ours = {"log-driver": "json-file", "log-opts": {"max-size": "50m", "max-file": "5"}, "live-restore": True}
    merged = merge(current, ours)
    assert merged["runtimes"] == NVIDIA["runtimes"] and merged["default-runtime"] == "nvidia"
    assert merged["data-root"] == "/data/docker"
    assert merged["log-opts"] == {"labels": "team", "max-size": "50m", "max-file": "5"}
    assert current["log-opts"] == {"labels": "team"}, "the input is not modified"
    assert merge(merged, ours) == merged, "merging again changes nothing"


def test_merge_replaces_lists_and_removes_keys():
    merged = merge({"exec-opts": ["native.cgroupdriver=cgroupfs"], "old": 1},
                   {"exec-opts": ["native.cgroupdriver=systemd"]}, remove=["old", "never-there"])
    assert merged == {"exec-opts": ["native.cgroupdriver=systemd"]}


def test_render_is_stable_json():
    text = render({"b": 1, "a": {"d": 2, "c": 3}})
    assert json.loads(text) == {"b": 1, "a": {"d": 2, "c": 3}} and text.endswith("}\n")
    assert text.index('"a"') < text.index('"b"')


@pytest.mark.parametrize("config, configured, default, reason", [
    (NVIDIA, True, True, "runtime 'nvidia' is configured (nvidia-container-runtime) as the default"),
    ({"runtimes": NVIDIA["runtimes"]}, True, False, "runtime 'nvidia' is configured (nvidia-container-runtime)"),
    ({}, False, False, "runtime 'nvidia' is not configured"),
    ({"runtimes": {"runc": {"path": "runc"}}}, False, False, "runtime 'nvidia' is not configured"),
    ({"default-runtime": "nvidia"}, False, True, "runtime 'nvidia' is not configured"),
    ({"runtimes": {"nvidia": {}}}, False, False, "runtime 'nvidia' has no path"),
    ({"runtimes": "garbage"}, False, False, "runtime 'nvidia' is not configured"),
])
def test_nvidia_runtime_state(config, configured, default, reason):
    state = runtime_state(config)
    assert (state["configured"], state["default"], state["reason"]) == (configured, default, reason)
    # Without asking for the default runtime, configuring is needed exactly when it is missing.
    assert state["configure"] is not configured


@pytest.mark.parametrize("text, as_default, configure", [
    (None, False, True),                                    # no daemon.json at all
    ("", False, True),                                      # an empty file
    ('{"log-driver": "json-file"}', False, True),           # foreign keys only
    (json.dumps({"runtimes": NVIDIA["runtimes"]}), False, False),   # present: a rerun does nothing
    (json.dumps({"runtimes": NVIDIA["runtimes"]}), True, True),     # present, but must become the default
    (json.dumps(NVIDIA), True, False),                      # present and the default
    (json.dumps(NVIDIA), False, False),                     # a default set by the operator is kept
    ('{"default-runtime": "nvidia"}', True, True),          # the default names a runtime that is missing
])
def test_configure_decision_from_the_file(text, as_default, configure):
    assert runtime_state(load(text), "nvidia", as_default)["configure"] is configure


def test_configure_decision_never_reached_for_a_malformed_file():
    # The decision needs a configuration; a broken file stops before it, with the place of the error.
    with pytest.raises(DaemonJsonError, match="line 1"):
        runtime_state(load('{"runtimes": {"nvidia": '), "nvidia", False)


def test_runtime_state_for_another_runtime():
    state = runtime_state({"runtimes": {"kata": {"path": "/usr/bin/kata-runtime"}}}, "kata")
    assert state["configured"] and not state["configure"] and state["path"] == "/usr/bin/kata-runtime"
