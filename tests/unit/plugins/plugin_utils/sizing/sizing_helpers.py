"""Helpers shared by the sizing tests."""

from __future__ import annotations

import pathlib
import re


ROOT = pathlib.Path(__file__).resolve().parents[5]
FULL_NODE = ["gateway", "app", "database", "redis", "vector_store"]

_PG_UNITS = {"kB": 1, "MB": 1024, "GB": 1024 * 1024}


def pg_kb(value: str) -> int:
    """Parse a PostgreSQL size such as 512MB into kB."""
    match = re.fullmatch(r"(\d+)(kB|MB|GB)", value)
    assert match, value
    return int(match.group(1)) * _PG_UNITS[match.group(2)]


def host(name="h1", vcpus=4, memory_mb=16384, components=None, **extra):
    """A host input dict for the sizing engine."""
    data = {"name": name, "vcpus": vcpus, "memory_mb": memory_mb, "components": list(components or FULL_NODE)}
    data.update(extra)
    return data
