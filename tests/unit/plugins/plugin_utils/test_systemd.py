# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""systemd_unit_actions: the units a role must act on, from one `systemctl show` of all of them.
The outputs are systemd 257's (Debian 13's test host), captured with the properties the roles ask
for: a running enabled unit, a static one, a running oneshot that is not enabled, a stopped and
disabled one, and units systemd does not know."""

from __future__ import annotations

import pathlib

import pytest
import yaml

from ansible.errors import AnsibleFilterError
from ansible_collections.difyops.dify.plugins.filter.systemd import systemd_unit_actions
from ansible_collections.difyops.dify.plugins.plugin_utils.systemd import PROPERTIES, UnitShowError, parse_show, unit_actions

REPO = pathlib.Path(__file__).resolve().parents[4]

SHOW = """\
Id=docker.service
LoadState=loaded
ActiveState=active
UnitFileState=enabled

Id=systemd-journald.service
LoadState=loaded
ActiveState=active
UnitFileState=static

Id=difyops-once.service
LoadState=loaded
ActiveState=active
UnitFileState=disabled

Id=containerd.service
LoadState=loaded
ActiveState=inactive
UnitFileState=disabled

Id=nosuch.service
LoadState=not-found
ActiveState=inactive
UnitFileState=
"""
UNITS = ["docker", "systemd-journald.service", "difyops-once.service", "containerd", "nosuch"]


def show(*indexes: int) -> str:
    """SHOW's blocks of the units at INDEXES, in that order (as systemctl show prints them)."""
    blocks = SHOW.split("\n\n")
    return "\n\n".join(blocks[index].strip("\n") for index in indexes) + "\n"


def test_show_output_is_read_block_by_block():
    blocks = parse_show(SHOW)
    assert [block["Id"] for block in blocks] == [
        "docker.service", "systemd-journald.service", "difyops-once.service", "containerd.service", "nosuch.service"]
    assert blocks[4] == {"Id": "nosuch.service", "LoadState": "not-found", "ActiveState": "inactive", "UnitFileState": ""}
    assert set(blocks[0]) == set(PROPERTIES)


def test_a_converged_host_needs_no_task():
    assert unit_actions(show(0, 1), UNITS[:2]) == []


def test_units_stopped_disabled_or_unknown_are_put_right():
    assert unit_actions(SHOW, UNITS) == [
        {"name": "difyops-once.service", "state": None, "enabled": True, "found": True},
        {"name": "containerd", "state": "started", "enabled": True, "found": True},
        {"name": "nosuch", "state": "started", "enabled": True, "found": False},
    ]


def test_changed_configuration_restarts_or_reloads_running_units():
    actions = unit_actions(show(0, 1, 3), UNITS[:2] + ["containerd"], restart=["docker.service"], reload=["systemd-journald", "containerd"])
    # A reload of a stopped unit is a start: the start reads the new configuration.
    assert [(action["name"], action["state"]) for action in actions] == [
        ("docker", "restarted"), ("systemd-journald.service", "reloaded"), ("containerd", "started")]


def test_enable_only_units_are_enabled_and_never_started():
    assert unit_actions(show(3, 2), ["containerd", "difyops-once.service"], restart=["containerd"], enable_only=["containerd"]) == [
        {"name": "containerd", "state": None, "enabled": True, "found": True},
        {"name": "difyops-once.service", "state": None, "enabled": True, "found": True},
    ]
    assert unit_actions(show(1), ["systemd-journald"], enable_only=["systemd-journald"]) == []


def test_output_that_is_not_the_units_asked_about_is_refused():
    with pytest.raises(UnitShowError, match=r"described 5 unit\(s\) for the 2"):
        unit_actions(SHOW, ["docker", "containerd"])
    with pytest.raises(UnitShowError, match="described docker.service where containerd.service was asked about"):
        unit_actions(show(0, 3), ["containerd", "docker"])


def test_the_filter_names_its_bad_arguments():
    assert systemd_unit_actions(SHOW, UNITS, ["docker"])[0] == {"name": "docker", "state": "restarted", "enabled": True, "found": True}
    with pytest.raises(AnsibleFilterError, match="takes units as a list of unit names"):
        systemd_unit_actions(SHOW, "docker")
    with pytest.raises(AnsibleFilterError, match="systemd_unit_actions: systemctl show described"):
        systemd_unit_actions("", ["docker"])


def test_the_documented_example_asks_for_the_properties_the_filter_reads():
    doc = yaml.safe_load((REPO / "plugins/filter/systemd_unit_actions.yml").read_text())
    example = yaml.safe_load(doc["EXAMPLES"])
    argv = example[0]["ansible.builtin.command"]["argv"]
    assert [part for part in argv.split("'") if part in PROPERTIES] == list(PROPERTIES)
