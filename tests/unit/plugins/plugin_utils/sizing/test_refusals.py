"""Refusal before change: each bad fleet is refused with a message naming host, need and fix."""

from __future__ import annotations

import pytest

from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.errors import PlanError
from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.fleet import plan_fleet

from sizing_helpers import host


def refusal(hosts, options=None):
    with pytest.raises(PlanError) as exc:
        plan_fleet(hosts, options)
    return str(exc.value)


def split(beat_on=()):
    return [
        host("gw", 2, 4000, ["gateway"], address="10.0.0.2"),
        host("app1", 4, 8000, ["app"], address="10.0.0.11", worker_beat="app1" in beat_on),
        host("app2", 4, 8000, ["app"], address="10.0.0.12", worker_beat="app2" in beat_on),
        host("data", 4, 16000, ["database", "redis", "vector_store"], address="10.0.0.21"),
    ]


def test_full_node_below_dify_minimum():
    message = refusal([host(vcpus=1, memory_mb=2048)])
    assert "host 'h1'" in message and "at least 2 CPUs and 4 GiB" in message and "1 vCPUs" in message


def test_host_too_small_for_its_components_names_need_and_availability():
    message = refusal([host("gw", 1, 1024, ["gateway"], address="10.0.0.2"),
                       host("big", 2, 2048, ["app"], address="10.0.0.3"),
                       host("data", 4, 8000, ["database", "redis", "vector_store"], address="10.0.0.4")])
    assert "host 'big'" in message
    assert "need" in message and "usable after" in message and "api" in message


def test_two_worker_beat_hosts():
    message = refusal(split(beat_on=("app1", "app2")), {"object_storage": True})
    assert "dify_worker_beat is true on 2 hosts (app1, app2)" in message and "one app host only" in message


def test_split_app_hosts_without_object_storage():
    message = refusal(split())
    assert "no shared object storage" in message and "app1, app2" in message


def test_missing_component_group():
    message = refusal([host(components=["gateway", "app", "database", "redis"])])
    assert "component 'vector_store' is placed on no host" in message and "dify_vector_store" in message


def test_component_on_two_hosts():
    hosts = split()
    hosts[0]["components"].append("database")
    assert "component 'database' is placed on 2 hosts (gw, data)" in refusal(hosts, {"object_storage": True})


def test_unknown_vector_store():
    message = refusal([host()], {"vector_store": "chromadb"})
    assert "dify_vector_store" in message and "got 'chromadb'" in message and "weaviate, qdrant, pgvector" in message


def test_address_that_is_not_an_ip():
    hosts = split()
    hosts[1]["address"] = "app-one.example"
    message = refusal(hosts, {"object_storage": True})
    assert "host 'app1': dify_address (or ansible_host) must be an IP address such as 10.0.0.11 or 2001:db8::11, got 'app-one.example'" in message


def test_impossible_memory_override():
    message = refusal([host(overrides={"services": {"api": {"memory_mb": 10 ** 6}}})])
    assert "host 'h1': dify_sizing_overrides.services.api.memory_mb must be at most the 14.9 GiB usable" in message
    assert "got 1000000" in message


def test_non_numeric_override():
    message = refusal([host(overrides={"services": {"api": {"cpus": "two"}}})])
    assert "dify_sizing_overrides.services.api.cpus must be a number above 0" in message and "got 'two'" in message


def test_override_below_floor():
    assert "below its floor" in refusal([host(overrides={"services": {"worker": {"memory_mb": 100}}})])


def test_override_of_service_not_on_host():
    message = refusal([host(overrides={"services": {"inference": {"memory_mb": 4096}}})])
    assert "dify_sizing_overrides.services.inference overrides a service this host does not run" in message


def test_unknown_setting_override():
    message = refusal([host(overrides={"settings": {"threads": 4}})])
    assert "dify_sizing_overrides.settings has an unknown key 'threads'" in message


def test_every_problem_is_reported_at_once():
    hosts = split(beat_on=("app1", "app2"))
    hosts[1]["address"] = "nope"
    problems = pytest.raises(PlanError, plan_fleet, hosts).value.problems
    assert len(problems) == 3


def test_memory_override_given_as_a_string_is_read_as_a_number():
    plan = plan_fleet([host(overrides={"services": {"api": {"memory_mb": "2.5e3"}}})])
    assert plan["hosts"]["h1"]["services"]["api"]["memory_mb"] == 2500


def test_overrides_are_honoured():
    plan = plan_fleet([host(overrides={"services": {"api": {"memory_mb": 3000, "cpus": 1.5}},
                                       "settings": {"api_workers": 3}})])
    api = plan["hosts"]["h1"]["services"]["api"]
    assert api["memory_mb"] == 3000 and api["cpus"] == 1.5
    assert plan["hosts"]["h1"]["settings"]["api"]["server_worker_amount"] == 3
