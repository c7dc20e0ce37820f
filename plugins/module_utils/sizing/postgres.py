# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL settings for the memory and CPUs a server is given.

Memory settings follow PGTune's "web" profile (le0pard/pgtune); autovacuum follows common
guidance for busy OLTP tables. ``memory_mb`` is what Postgres is given (its container limit).
"""

from __future__ import annotations

import math
from typing import Any, Dict

from .units import clamp, pg_size

# Storage parameters for Dify's hottest tables (rows appended and updated on every run/message).
HOT_TABLES = (
    "workflow_runs",
    "workflow_node_executions",
    "workflow_app_logs",
    "messages",
    "conversations",
    "message_files",
)

RANDOM_PAGE_COST = {"hdd": 4.0, "ssd": 1.1, "nvme": 1.1, "virtual": 1.1, "network": 4.0}
EFFECTIVE_IO_CONCURRENCY = {"hdd": 2, "ssd": 200, "nvme": 1000, "virtual": 200, "network": 2}
# The cost budget is shared by all autovacuum workers; fast disks afford a larger one.
AUTOVACUUM_COST_LIMIT = {"hdd": 400, "ssd": 1000, "nvme": 2000, "virtual": 1000, "network": 400}

WORK_MEM_FLOOR_KB = 4096
MAINTENANCE_WORK_MEM_CAP_MB = 2048
WAL_BUFFERS_CAP_KB = 16384


def memory_settings_kb(memory_mb: int, cpus: int, max_connections: int) -> Dict[str, int]:
    """PGTune "web" memory settings in kB (integers), for ``memory_mb`` given to Postgres."""
    total_kb = memory_mb * 1024
    shared_buffers = total_kb // 4
    workers = max_worker_processes(cpus)
    work_mem = (total_kb - shared_buffers) // ((max_connections + workers) * 3)
    return {
        "shared_buffers": shared_buffers,
        "effective_cache_size": total_kb * 3 // 4,
        "maintenance_work_mem": min(total_kb // 16, MAINTENANCE_WORK_MEM_CAP_MB * 1024),
        "wal_buffers": wal_buffers_kb(shared_buffers),
        "work_mem": max(WORK_MEM_FLOOR_KB, work_mem),
    }


def wal_buffers_kb(shared_buffers_kb: int) -> int:
    """3% of shared_buffers, at most 16 MB; values near the cap round up to it, as PGTune does."""
    wal = shared_buffers_kb * 3 // 100
    if wal > WAL_BUFFERS_CAP_KB - 2048:
        wal = WAL_BUFFERS_CAP_KB
    return max(32, wal)


def max_worker_processes(cpus: int) -> int:
    """Background worker slots: one per CPU from 4 CPUs on, PostgreSQL's default 8 below."""
    return cpus if cpus >= 4 else 8


def parallel_settings(cpus: int) -> Dict[str, int]:
    """Parallel query settings (PGTune), only from 4 CPUs on."""
    if cpus < 4:
        return {}
    per_gather = min(4, int(math.ceil(cpus / 2.0)))
    return {
        "max_worker_processes": cpus,
        "max_parallel_workers_per_gather": per_gather,
        "max_parallel_workers": cpus,
        "max_parallel_maintenance_workers": per_gather,
    }


def autovacuum_settings(cpus: int, disk_kind: str, naptime_s: int) -> Dict[str, Any]:
    """Autovacuum: 5%/2% scale factors, more workers with more CPUs, cost limit by disk kind."""
    workers = clamp(cpus // 4 + 2, 3, 6)
    cost_limit = AUTOVACUUM_COST_LIMIT[disk_kind]
    # More workers share one budget: raise it with the worker count so each keeps its pace.
    cost_limit = cost_limit * workers // 3
    return {
        "autovacuum": "on",
        "autovacuum_max_workers": workers,
        "autovacuum_naptime": "%ds" % naptime_s,
        "autovacuum_vacuum_scale_factor": 0.05,
        "autovacuum_analyze_scale_factor": 0.02,
        "autovacuum_vacuum_insert_scale_factor": 0.05,
        "autovacuum_vacuum_cost_limit": cost_limit,
        "autovacuum_vacuum_cost_delay": "2ms",
    }


def hot_table_settings() -> Dict[str, Dict[str, float]]:
    """Per-table storage parameters for Dify's hottest tables."""
    return {
        table: {"autovacuum_vacuum_scale_factor": 0.01, "autovacuum_analyze_scale_factor": 0.01}
        for table in HOT_TABLES
    }


def postgres_settings(memory_mb: int, cpus: float, disk_kind: str, max_connections: int, naptime_s: int) -> Dict[str, Any]:
    """Every managed postgresql.conf setting, rendered as PostgreSQL accepts it."""
    whole_cpus = max(1, int(cpus))
    mem = memory_settings_kb(memory_mb, whole_cpus, max_connections)
    settings: Dict[str, Any] = {
        "max_connections": max_connections,
        "shared_buffers": pg_size(mem["shared_buffers"] / 1024.0),
        "effective_cache_size": pg_size(mem["effective_cache_size"] / 1024.0),
        "maintenance_work_mem": pg_size(mem["maintenance_work_mem"] / 1024.0),
        "work_mem": "%dkB" % mem["work_mem"],
        "wal_buffers": "%dkB" % mem["wal_buffers"],
        "min_wal_size": "1GB",
        "max_wal_size": "4GB",
        "checkpoint_completion_target": 0.9,
        "default_statistics_target": 100,
        "random_page_cost": RANDOM_PAGE_COST[disk_kind],
        "effective_io_concurrency": EFFECTIVE_IO_CONCURRENCY[disk_kind],
        "huge_pages": "try" if memory_mb >= 32768 else "off",
    }
    settings.update(parallel_settings(whole_cpus))
    settings.update(autovacuum_settings(whole_cpus, disk_kind, naptime_s))
    return settings
