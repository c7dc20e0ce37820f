# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The order of an upgrade's steps (plugin_utils/upgrade.py), on computed plans: data hosts first,
the migration host, the other app hosts in two halves, the gateways last; what the gateways drain
in each step; nothing drained in a single node."""

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.difyops.dify.plugins.filter.compose import dify_upgrade
from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.fleet import plan_fleet
from ansible_collections.difyops.dify.plugins.plugin_utils.upgrade import upgrade_steps


def fleet(apps: int):
    hosts = [{"name": "gw", "vcpus": 2, "memory_mb": 4000, "components": ["gateway"], "address": "10.0.0.1"},
             {"name": "data", "vcpus": 4, "memory_mb": 16000, "components": ["database", "redis", "vector_store"],
              "address": "10.0.0.2"}]
    hosts += [{"name": "app%d" % n, "vcpus": 4, "memory_mb": 16000, "components": ["app"], "address": "10.0.1.%d" % n}
              for n in range(1, apps + 1)]
    return plan_fleet(hosts, {"object_storage": True})


def test_a_split_fleet_moves_data_migration_two_halves_then_the_gateway():
    plan = fleet(5)
    steps = upgrade_steps(plan, ["data", "app1", "app2", "app3", "app4", "app5"])
    assert plan["fleet"]["migration_host"] == "app1"
    # The gateway has no Compose project (no version recorded), yet it changes with the fleet.
    assert steps["step"] == {"data": "data", "app1": "migration", "app2": "apps_a", "app3": "apps_a",
                             "app4": "apps_b", "app5": "apps_b", "gw": "gateway"}
    assert steps["gateways"] == ["gw"]
    endpoints = plan["fleet"]["gateway_endpoints"]
    assert steps["drain"] == {"migration": endpoints["app1"], "apps_a": endpoints["app2"] + endpoints["app3"],
                              "apps_b": endpoints["app4"] + endpoints["app5"]}
    # Every drained endpoint is one the gateway balances over, and each half leaves the rest serving.
    upstream = plan["fleet"]["gateway_upstreams"]["api"]
    for name in ("migration", "apps_a", "apps_b"):
        api = [e for e in steps["drain"][name] if e.endswith(":5001")]
        assert set(api) < set(upstream) and len(upstream) - len(api) >= 3


def test_an_odd_half_goes_first_and_hosts_already_upgraded_stay_out():
    plan = fleet(4)
    steps = upgrade_steps(plan, ["app2", "app3", "app4"])  # app1 and data already run the new version
    assert steps["step"] == {"app2": "apps_a", "app3": "apps_a", "app4": "apps_b", "gw": "gateway"}
    assert steps["drain"]["migration"] == []


def test_nothing_to_upgrade_has_no_step():
    assert upgrade_steps(fleet(2), []) == {"step": {}, "drain": {"migration": [], "apps_a": [], "apps_b": []},
                                           "gateways": ["gw"]}


def test_a_single_node_drains_nothing():
    plan = plan_fleet([{"name": "node", "vcpus": 4, "memory_mb": 16000,
                        "components": ["gateway", "app", "database", "redis", "vector_store"]}])
    steps = upgrade_steps(plan, ["node"])
    assert steps == {"step": {"node": "migration"}, "drain": {"migration": [], "apps_a": [], "apps_b": []},
                     "gateways": []}


def test_a_host_missing_from_the_plan_is_refused():
    with pytest.raises(ValueError, match="the plan has no host ghost: plan the fleet with the inventory"):
        upgrade_steps(fleet(2), ["app2", "ghost"])


def test_the_filter_adds_the_steps_and_names_a_bad_plan():
    project = {"services": {"api": {}}, "x-difyops": {"dify_version": "1.13.3"}}
    result = dify_upgrade({"gw": None, "data": project, "app1": project, "app2": project}, "1.16.1", fleet(2))
    assert result["needed"] and result["hosts"] == ["app1", "app2", "data"]
    assert result["steps"]["step"] == {"data": "data", "app1": "migration", "app2": "apps_a", "gw": "gateway"}
    assert "steps" not in dify_upgrade({"app1": project}, "1.16.1")
    with pytest.raises(AnsibleFilterError, match="dify_upgrade: the plan lacks 'hosts': pass dify_plan"):
        dify_upgrade({"app1": project}, "1.16.1", {"fleet": {}})
