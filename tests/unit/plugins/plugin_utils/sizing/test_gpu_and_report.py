"""GPU assignment and the people-facing reports. GPUs here are plain dicts shaped like
gpu_facts output: this machine has no GPU, so they stand in for absent hardware."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.fleet import plan_fleet
from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.gpu import plan_inference, usable_gpus
from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.report import memory_svg, reports

from sizing_helpers import host

A100 = {"name": "NVIDIA A100-SXM4-80GB", "memory_total_mib": 81920, "compute_capability": "8.0"}
L4 = {"name": "NVIDIA L4", "memory_total_mib": 23034, "compute_capability": "8.9"}


def test_mig_enabled_gpus_are_left_out():
    gpus = [dict(A100, index=0, mig_mode=True), dict(A100, index=1, mig_mode=False)]
    assigned, notes = usable_gpus(gpus)
    assert [g["index"] for g in assigned] == [1]
    assert "MIG enabled" in notes[0]


def test_mixed_models_use_the_largest_identical_group():
    gpus = [dict(L4, index=0), dict(A100, index=1), dict(A100, index=2), dict(L4, index=3), dict(L4, index=4)]
    assigned, notes = usable_gpus(gpus)
    assert [g["index"] for g in assigned] == [1, 2]
    assert any("L4 left unassigned" in n for n in notes)


def test_tensor_parallel_size_is_a_power_of_two():
    plan = plan_inference([dict(A100, index=i) for i in range(6)], "x86_64")
    assert plan["tensor_parallel_size"] == 4 and plan["gpu_indexes"] == [0, 1, 2, 3]


def test_fp8_needs_ada_or_hopper():
    plan = plan_inference([dict(A100, index=0)], "x86_64")
    assert plan["engine"] == "vllm" and plan["quantization"] != "fp8"


def test_small_gpu_that_fits_nothing_is_reported_not_failed():
    plan = plan_inference([{"index": 0, "name": "tiny", "memory_total_mib": 512, "compute_capability": "5.0"}], "x86_64")
    assert plan["enabled"] is False and "no model tier fits" in plan["reason"]


def test_no_gpu_gives_a_reason():
    assert plan_inference([], "x86_64") == {"enabled": False, "reason": "no whole GPU is available for inference",
                                            "notes": []}


def test_reports_cover_every_service_and_the_svg_adds_up():
    plan = plan_fleet([host(vcpus=8, memory_mb=32000)])
    files = reports(plan)
    assert set(files) == {"h1.md", "h1-memory.svg"}
    for service in plan["hosts"]["h1"]["services"]:
        assert "| %s |" % service in files["h1.md"]
    root = ET.fromstring(memory_svg(plan["hosts"]["h1"]))
    bars = [r for r in root.iter("{http://www.w3.org/2000/svg}rect") if r.get("height") == "36"]
    assert len(bars) == len(plan["hosts"]["h1"]["services"]) + 2
    assert abs(sum(float(b.get("width")) for b in bars) - 700) < 1.0
