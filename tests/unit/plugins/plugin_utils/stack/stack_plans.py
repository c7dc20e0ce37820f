# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The computed plans the stack tests build projects from: a single node, and a split fleet of a
gateway, two app hosts and a data host (plus the hosts a test adds, such as a GPU host)."""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.fleet import plan_fleet

ALL = ["gateway", "app", "database", "redis", "vector_store"]
SPLIT_HOSTS = [
    {"name": "gw", "vcpus": 2, "memory_mb": 4000, "components": ["gateway"], "address": "10.0.0.1"},
    {"name": "app1", "vcpus": 8, "memory_mb": 32000, "components": ["app"], "address": "10.0.0.2"},
    {"name": "app2", "vcpus": 8, "memory_mb": 32000, "components": ["app"], "address": "10.0.0.3"},
    {"name": "data", "vcpus": 8, "memory_mb": 32000, "components": ["database", "redis", "vector_store"],
     "address": "10.0.0.4"},
]


def _options(version: Optional[str], **options: Any) -> Dict[str, Any]:
    return dict(options, version=version) if version else options


def single(version: Optional[str] = None, memory_mb: int = 16000, vcpus: int = 4, vector_store: str = "weaviate") -> Dict[str, Any]:
    """One host with every component; Dify's default version unless VERSION is given."""
    return plan_fleet([{"name": "one", "vcpus": vcpus, "memory_mb": memory_mb, "components": ALL, "address": "192.0.2.10"}],
                      _options(version, vector_store=vector_store))


def split(version: Optional[str] = None, vector_store: str = "qdrant", extra_hosts: Sequence[Dict[str, Any]] = ()) -> Dict[str, Any]:
    """The split fleet (SPLIT_HOSTS and EXTRA_HOSTS) with object storage."""
    return plan_fleet([dict(host) for host in SPLIT_HOSTS] + list(extra_hosts),
                      _options(version, object_storage=True, vector_store=vector_store))
