# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The computed plans the monitoring tests read (alert rules, scrape targets, dashboard): a single
node, and a split fleet with a gateway, two app hosts (one on IPv6), a data host and a GPU host."""

from __future__ import annotations

from typing import Any, Dict

from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.fleet import plan_fleet

ALL = ["gateway", "app", "database", "redis", "vector_store"]
# A GPU as difyops.dify.gpu_facts reports it: a stand-in for hardware this machine lacks.
L4 = {"index": 0, "name": "NVIDIA L4", "memory_total_mib": 23034, "uuid": "GPU-l4", "compute_capability": "8.9"}
# Ratios away from the defaults, for tests that must see the options reach the output.
CUSTOM = {"memory_ratio": 0.75, "postgres_connections_ratio": 0.6, "redis_memory_ratio": 0.5, "gpu_memory_ratio": 0.97,
          "slice_memory_ratio": 0.9, "api_error_ratio": 0.1, "api_latency_seconds": 2.5}


def single() -> Dict[str, Any]:
    return plan_fleet([{"name": "one", "vcpus": 4, "memory_mb": 16000, "components": ALL, "address": "192.0.2.10"}], {})


def split() -> Dict[str, Any]:
    return plan_fleet([
        {"name": "gw", "vcpus": 2, "memory_mb": 4000, "components": ["gateway"], "address": "10.0.0.1"},
        {"name": "app1", "vcpus": 8, "memory_mb": 32000, "components": ["app"], "address": "10.0.0.2"},
        {"name": "app2", "vcpus": 8, "memory_mb": 32000, "components": ["app"], "address": "2001:db8::3"},
        {"name": "data", "vcpus": 8, "memory_mb": 32000, "components": ["database", "redis", "vector_store"],
         "address": "10.0.0.4"},
        {"name": "gpu", "vcpus": 16, "memory_mb": 64000, "components": ["gpu_inference"], "address": "10.0.0.5",
         "gpus": [L4]},
    ], {"object_storage": True})
