"""The sizing filters as playbooks call them."""

from __future__ import annotations

import json

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.difyops.dify.plugins.filter.sizing import FilterModule

FILTERS = FilterModule().filters()

GROUPS = {
    "all": ["a1", "d1"],
    "dify": ["a1", "d1"],
    "dify_gateway": ["a1"],
    "dify_app": ["a1"],
    "dify_database": ["d1"],
    "dify_redis": ["d1"],
    "dify_vector_store": ["d1"],
}
HOSTVARS = {
    "a1": {"ansible_host": "192.0.2.10", "ansible_facts": {"processor_vcpus": 4, "memtotal_mb": 7900,
                                                           "architecture": "x86_64"}},
    "d1": {"ansible_host": "db.example", "dify_disk_kind": "nvme", "dify_profile": "standard",
           "ansible_facts": {"processor_vcpus": 8, "memtotal_mb": 32000, "architecture": "aarch64",
                             "default_ipv4": {"address": "192.0.2.20"}}},
}


def test_plan_inputs_reads_groups_facts_and_variables():
    inputs = FILTERS["plan_inputs"](GROUPS, HOSTVARS)
    a1, d1 = inputs
    assert a1["components"] == ["gateway", "app"] and a1["address"] == "192.0.2.10"
    assert d1["components"] == ["database", "redis", "vector_store"]
    assert d1["address"] == "192.0.2.20" and d1["disk_kind"] == "nvme" and d1["profile"] == "standard"
    assert (d1["vcpus"], d1["memory_mb"], d1["architecture"]) == (8, 32000, "aarch64")


def test_stack_plan_from_inventory():
    plan = FILTERS["stack_plan"](FILTERS["plan_inputs"](GROUPS, HOSTVARS))
    assert set(plan["hosts"]) == {"a1", "d1"}
    assert plan["fleet"]["data_access"]["database"] == ["192.0.2.10/32"]
    assert FILTERS["plan_summary"](plan)[-1].startswith("fleet: vector store weaviate")


def test_stack_plan_refusal_is_a_filter_error_listing_problems():
    with pytest.raises(AnsibleFilterError) as exc:
        FILTERS["stack_plan"]([{"name": "tiny", "vcpus": 1, "memory_mb": 1024, "components": ["app"]}])
    assert "nothing was changed" in str(exc.value)
    assert "component 'database' is placed on no host" in str(exc.value)


def test_plan_inputs_without_the_dify_group():
    with pytest.raises(AnsibleFilterError, match="no group 'dify'"):
        FILTERS["plan_inputs"]({"all": []}, {})


def test_plan_inputs_takes_gpus_and_disk_kind_from_the_fact_modules():
    facts = dict(HOSTVARS["a1"]["ansible_facts"])
    facts["gpus"] = {"count": 1, "devices": [{"index": 0, "name": "NVIDIA L4", "memory_total_mib": 23034}]}
    facts["disks"] = {"paths": {"/var/lib/docker": {"kind": "nvme"}, "/srv/dify": {"kind": "hdd"},
                                "bad": {"error": "bad is not an absolute path"}}}
    hostvars = dict(HOSTVARS, a1=dict(HOSTVARS["a1"], ansible_facts=facts))
    a1 = FILTERS["plan_inputs"](GROUPS, hostvars)[0]
    assert a1["disk_kind"] == "hdd", "the slowest described path decides"
    assert a1["gpus"][0]["name"] == "NVIDIA L4"
    facts["disks"] = {"paths": {"/": {"kind": "unknown"}}}
    assert FILTERS["plan_inputs"](GROUPS, hostvars)[0]["disk_kind"] == "ssd"


def test_plan_report_files_are_one_file_set_call():
    filters = FilterModule().filters()
    hosts = [{"name": "gw", "vcpus": 2, "memory_mb": 4096, "components": ["gateway"], "address": "10.0.0.1"},
             {"name": "app", "vcpus": 4, "memory_mb": 16384, "components": ["app"], "address": "10.0.0.2"},
             {"name": "data", "vcpus": 4, "memory_mb": 16384, "components": ["database", "redis", "vector_store"],
              "address": "10.0.0.3"}]
    plan = filters["stack_plan"](hosts)
    files = filters["plan_report_files"](plan, "/srv/plan/")
    assert [f["path"] for f in files] == ["/srv/plan/plan.json"] + ["/srv/plan/%s" % n for n in sorted(
        ["app.md", "app-memory.svg", "data.md", "data-memory.svg", "gw.md", "gw-memory.svg"])]
    assert {f["mode"] for f in files} == {"0644"}
    assert json.loads(files[0]["content"]) == plan
    assert files[1]["content"] == filters["plan_reports"](plan)[files[1]["path"].rsplit("/", 1)[1]]
    with pytest.raises(AnsibleFilterError, match="absolute path"):
        filters["plan_report_files"](plan, "dify-plan")
