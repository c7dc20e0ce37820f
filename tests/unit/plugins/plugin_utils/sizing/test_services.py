# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry of services (sizing/services.py): every table of the sizing engine and the stack
model that is keyed by service is a view of it, every service the engine plans has a record, and no
module keeps its own copy of a service's port or data directory (issue 22)."""

from __future__ import annotations

import ast
import itertools
import pathlib
from typing import Any, Iterator, List, Tuple

import pytest

from ansible_collections.difyops.dify.plugins.plugin_utils import monitoring
from ansible_collections.difyops.dify.plugins.plugin_utils.sizing import catalog, fleet, host, postgres, services
from ansible_collections.difyops.dify.plugins.plugin_utils.stack import backup, compose, constants, moves, versions

REPO = pathlib.Path(__file__).resolve().parents[5]
PLUGINS = REPO / "plugins"
REGISTRY = PLUGINS / "plugin_utils" / "sizing" / "services.py"
RECORDS = services.SERVICES


def test_the_sizing_tables_are_the_records():
    assert catalog.SERVICE_SPECS == {name: r.sizing for name, r in RECORDS.items()}
    # The catalog's order is the registry's: error messages list the services in it.
    assert list(catalog.SERVICE_SPECS) == list(RECORDS)
    assert catalog.APP_SERVICES == tuple(n for n, r in RECORDS.items() if r.component == "app" and r.every_version)
    assert catalog.APP_SERVICES == ("api", "worker", "worker_beat", "web", "sandbox", "plugin_daemon", "ssrf_proxy")
    assert catalog.SINGLETON_APP_SERVICES == ("worker_beat", "plugin_daemon")
    assert catalog.VECTOR_STORES == ("weaviate", "qdrant", "pgvector")
    assert catalog.DATA_SERVICES == tuple(n for n, r in RECORDS.items() if r.never_swap)
    assert set(catalog.DATA_SERVICES) == {"db_postgres", "redis"} | set(catalog.VECTOR_STORES)
    assert postgres.STACK_POSTGRES_VERSIONS == {"db_postgres": 15, "pgvector": 16}
    assert host.POSTGRES_SERVICES == ("db_postgres", "pgvector")
    assert versions.CORE_APP_SERVICES == catalog.APP_SERVICES


def test_the_ports_are_the_records():
    assert fleet.PORTS == {n: r.published for n, r in RECORDS.items() if r.published is not None}
    assert fleet.PORTS == {"api": 5001, "web": 3000, "plugin_daemon": 5002, "db_postgres": 5432, "redis": 6379,
                           "weaviate": 8080, "qdrant": 6333, "pgvector": 5433, "pgbouncer": 6432, "inference": 8000}
    assert fleet.GATEWAY_UPSTREAMS == ("api", "web", "plugin_daemon")
    assert fleet.DATA_ACCESS_COMPONENTS == ("database", "redis", "vector_store", "gpu_inference")
    assert compose.SANDBOX_PORT == RECORDS["sandbox"].port == 8194
    assert compose.SSRF_PORT == RECORDS["ssrf_proxy"].port == RECORDS["agent_ssrf_proxy"].port == 3128
    assert compose.AGENT_BACKEND_PORT == RECORDS["agent_backend"].port == 5050
    assert compose.SHELLCTL_PORT == RECORDS["local_sandbox"].port == 5004
    # pgvector listens on PostgreSQL's port in its container and is published beside the host's.
    assert (RECORDS["pgvector"].port, RECORDS["pgvector"].published) == (5432, 5433)
    with pytest.raises(KeyError, match="inference has no port"):
        services.port("inference")


def test_the_stack_tables_are_the_records():
    assert compose.DATA_DIRS == {n: r.data_dir for n, r in RECORDS.items() if r.data_dir is not None}
    assert compose.DATA_DIRS["api"] == compose.DATA_DIRS["worker"] == "volumes/app/storage"
    assert compose.HOST_SERVICES_WHEN_SPLIT == monitoring.HOST_SERVICES_WHEN_SPLIT == ("nginx", "db_postgres")
    assert constants.database_passwords() == {"db_postgres": "DB_PASSWORD", "pgvector": "PGVECTOR_PASSWORD"}
    assert backup.FILE_VECTOR_STORES == ("weaviate", "qdrant")
    what = moves._WHAT  # pylint: disable=protected-access
    assert what == {n: r.keeps for n, r in RECORDS.items() if r.keeps}
    assert set(moves.VECTOR_STORES) <= set(what)


def test_every_service_the_catalog_plans_has_a_record():
    extra = {name for version in versions.SUPPORTED for name in versions.record(version).extra_app_services}
    planned = set(extra)
    for count in range(1, len(catalog.COMPONENTS) + 1):
        for components, store, beat, pooler in itertools.product(
                itertools.combinations(catalog.COMPONENTS, count), catalog.VECTOR_STORES, (True, False), (True, False)):
            planned |= set(catalog.services_for(components, store, beat, pooler, tuple(sorted(extra))))
    assert planned == set(RECORDS)
    # A service only some versions run is one some version adds, and the other way round.
    assert extra == {n for n, r in RECORDS.items() if not r.every_version}
    for version in versions.SUPPORTED:
        assert set(versions.record(version).app_services) <= set(RECORDS)


def test_every_record_is_consistent():
    for name, record in RECORDS.items():
        assert record.name == name
        assert record.component in catalog.COMPONENTS, name
        assert record.clients in services.CLIENTS + ("",), name
        # A published port has clients for the firewall, and clients have a port to reach.
        assert (record.published is None) == (not record.clients), name
        assert not record.password or record.postgres, name
        assert not record.keeps or record.data_dir, name
        assert not record.singleton or record.component == "app", name
    assert all(RECORDS[s].component == "database" for s in catalog.POSTGRES_POOLERS)


# --- No copies: a dict literal keyed by service names that repeats a record's port or data directory.

def _constant(node: ast.AST) -> Any:
    return node.value if isinstance(node, ast.Constant) else None


def _pairs(node: ast.AST) -> Iterator[Tuple[Any, Any]]:
    """The constant (key, value) pairs of a dict display or of a dict(...) call with keywords."""
    if isinstance(node, ast.Dict):
        for key, value in zip(node.keys, node.values):
            if key is not None:
                yield _constant(key), _constant(value)
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
        for keyword in node.keywords:
            yield keyword.arg, _constant(keyword.value)


def _repeats(name: Any, value: Any) -> bool:
    record = RECORDS.get(name) if isinstance(name, str) else None
    if record is None or value is None or isinstance(value, bool):
        return False
    return value in (record.port, record.published, record.data_dir)


def copies(source: str, filename: str = "<source>") -> List[str]:
    """'file:line' of each dict literal in SOURCE that gives a service its port or data directory."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if any(_repeats(key, value) for key, value in _pairs(node)):
            found.append("%s:%d" % (filename, getattr(node, "lineno", 0)))
    return found


def test_no_module_keeps_its_own_copy_of_a_services_port_or_data_directory():
    found = []
    for path in sorted(PLUGINS.rglob("*.py")):
        if path != REGISTRY:
            found += copies(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))
    assert found == [], "give the service's record the fact (sizing/services.py) and derive the table from it"


@pytest.mark.parametrize("source", [
    'PORTS = {"api": 5001, "web": 3000, "pgvector": 5433}',
    'DATA_DIRS = {"redis": "volumes/redis/data"}',
    'PORTS = dict(qdrant=6333)',
    'SOURCES = {"pgvector": 5432}',
])
def test_the_scan_finds_a_copy(source):
    assert copies(source) == ["<source>:1"]


@pytest.mark.parametrize("source", [
    # Other things keyed by service names, and other ports of the same names (monitoring's exporters).
    'KEEPALIVE = {"api": 0, "web": 32, "plugin_daemon": 32}',
    'EXPORTERS = {"redis": 9121, "nginx": 9113, "cadvisor": 8080}',
    'ENGINES = {"vllm": 8000, "ollama": 11434}',
    'FLAGS = {"api": True}',
])
def test_the_scan_leaves_other_tables_alone(source):
    assert copies(source) == []
