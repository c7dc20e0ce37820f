# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A new plan never moves data away from a deployed fleet without a word: the deployed projects
are the ones compose.bundle builds, the plans the ones the engine computes."""

from __future__ import annotations

import pytest

from ansible_collections.difyops.dify.plugins.filter.compose import plan_data_moves as filter_moves
from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.fleet import plan_fleet
from ansible_collections.difyops.dify.plugins.plugin_utils.stack.compose import bundle
from ansible_collections.difyops.dify.plugins.plugin_utils.stack.moves import keeps_data, plan_data_moves

ALL = ["gateway", "app", "database", "redis", "vector_store"]
S3 = {"endpoint": "https://s3.example", "bucket": "dify", "path_style": True}


def node(vcpus, memory_mb, store="auto"):
    return plan_fleet([{"name": "one", "vcpus": vcpus, "memory_mb": memory_mb, "components": ALL,
                        "address": "192.0.2.10"}], {"vector_store": store})


def fleet(data_host="data1", app_hosts=("app1", "app2")):
    """A gateway, the app hosts, and data1 and data2: the data services on data_host, the other an app host."""
    hosts = [{"name": "gw", "vcpus": 2, "memory_mb": 4000, "components": ["gateway"], "address": "10.0.0.1"}]
    hosts += [{"name": h, "vcpus": 8, "memory_mb": 32000, "components": ["app"], "address": "10.0.0.%d" % (2 + i)}
              for i, h in enumerate(app_hosts)]
    for i, h in enumerate(["data1", "data2"]):
        components = ["database", "redis", "vector_store"] if h == data_host else ["app"]
        hosts.append({"name": h, "vcpus": 8, "memory_mb": 32000, "address": "10.0.1.%d" % (1 + i), "components": components})
    return plan_fleet(hosts, {"object_storage": True, "vector_store": "pgvector"})


def deployed(plan, storage=None):
    return {h: bundle(plan, h, {"object_storage": storage or {}} if storage else {})["compose"] for h in plan["hosts"]}


def test_growing_a_host_that_switches_auto_pgvector_to_weaviate_is_refused_with_the_fix():
    before, after = node(2, 12288), node(4, 16384)
    assert "pgvector" in before["hosts"]["one"]["services"] and "weaviate" in after["hosts"]["one"]["services"]
    moves = plan_data_moves(after, deployed(before))
    assert len(moves["refusals"]) == 1
    refusal = moves["refusals"][0]
    assert "switches the vector store from pgvector to weaviate" in refusal
    assert "dify_vector_store: pgvector" in refusal and "dify_allow_data_move" in refusal
    assert "volumes/pgvector/data" in refusal


def test_the_same_plan_again_moves_nothing():
    plan = node(4, 16384)
    assert plan_data_moves(plan, deployed(plan)) == {"refusals": [], "orphans": []}


def test_moving_the_data_services_to_another_host_is_refused_per_service():
    before, after = fleet(data_host="data1"), fleet(data_host="data2")
    moves = plan_data_moves(after, deployed(before, S3))
    text = " ".join(moves["refusals"])
    for service in ("pgvector", "redis"):
        assert "host data1 keeps" in text and "moves %s to data2" % service in text
    assert "difyops.dify.backup" in text


def test_allowing_the_move_reports_the_left_data_as_orphans_instead():
    before, after = node(2, 12288), node(4, 16384)
    moves = plan_data_moves(after, deployed(before), allowed=True)
    assert moves["refusals"] == []
    assert any("one: pgvector (with its data) is no longer planned here" in o for o in moves["orphans"])


def test_an_app_host_leaving_a_fleet_with_object_storage_is_an_orphan_not_a_refusal():
    before = fleet(app_hosts=("app1", "app2", "app3"))
    after = fleet(app_hosts=("app1", "app2"))
    project = deployed(before, S3)
    moves = plan_data_moves(after, {"app3": project["app3"]})
    assert moves["refusals"] == []
    assert any(o.startswith("app3: api is no longer planned here") for o in moves["orphans"])


def test_local_file_and_plugin_storage_keep_data_but_object_storage_does_not():
    single = deployed(node(4, 16384))["one"]["services"]
    assert keeps_data("api", single["api"]) and keeps_data("plugin_daemon", single["plugin_daemon"])
    split = deployed(fleet(), S3)["app1"]["services"]
    assert not keeps_data("api", split["api"])
    assert not keeps_data("web", single["web"]) and not keeps_data("sandbox", single["sandbox"])


def test_hosts_without_a_deployment_are_skipped():
    plan = node(4, 16384)
    assert plan_data_moves(plan, {"one": None}) == {"refusals": [], "orphans": []}


def test_the_filter_refuses_input_that_is_not_a_plan():
    from ansible.errors import AnsibleFilterError
    with pytest.raises(AnsibleFilterError, match="plan_data_moves"):
        filter_moves({"no": "hosts"}, {"one": {"services": {"db_postgres": {}}}})
