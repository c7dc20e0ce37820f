# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL settings for the memory and CPUs a server is given.

Two layers. ``pgtune_web`` is PGTune's current "web" profile for Linux (le0pard/pgtune at 7caef27,
``src/features/configuration/configurationSlice.js``), unchanged. ``postgres_settings`` starts from
it and departs on purpose in three places, each documented in docs/sizing.md:

* ``huge_pages`` follows what host tuning provides (today: no huge pages, so ``off``);
* autovacuum is tuned for Dify's busy tables (more workers, lower scale factors, cost limits);
* memory is lowered where PGTune's values could exceed the container's limit in the worst case
  (``worst_case_kb``): autovacuum memory, then ``work_mem``, then maintenance memory with it.

``memory_mb`` is what Postgres is given (its container limit). Memory values are kB internally.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any, Dict, Mapping, Optional

from .services import SERVICES
from .units import clamp

KB_PER_MB = 1024
KB_PER_GB = 1024 * 1024

# The PostgreSQL major version each stack service runs (services.py says where each comes from).
STACK_POSTGRES_VERSIONS = {name: record.postgres for name, record in SERVICES.items() if record.postgres}
DEFAULT_POSTGRES_VERSION = 15
# Every rendered setting is valid from 13 (autovacuum_vacuum_insert_scale_factor) to 17.
SUPPORTED_POSTGRES_VERSIONS = (13, 14, 15, 16, 17)

# Storage parameters for Dify's hottest tables (rows appended and updated on every run/message).
HOT_TABLES = (
    "workflow_runs",
    "workflow_node_executions",
    "workflow_app_logs",
    "messages",
    "conversations",
    "message_files",
)

# ---------------------------------------------------------------------------------------------
# PGTune, web profile, Linux (configurationSlice.js line numbers at le0pard/pgtune 7caef27).
# ---------------------------------------------------------------------------------------------

# The collection's disk kinds as PGTune's "Data Storage"; "virtual" disks count as SSDs.
PGTUNE_DISK = {"hdd": "hdd", "ssd": "ssd", "nvme": "nvme", "virtual": "ssd", "network": "san"}
PGTUNE_RANDOM_PAGE_COST = {"hdd": 4.0, "ssd": 1.1, "nvme": 1.1, "san": 1.1}  # l.269-293
PGTUNE_EFFECTIVE_IO_CONCURRENCY = {"hdd": 2, "ssd": 200, "nvme": 1000, "san": 300}  # l.295-308
PGTUNE_WORK_MEM_FLOOR_KB = 4 * KB_PER_MB  # l.358-437
PGTUNE_DEFAULT_WORKER_PROCESSES = 8  # PostgreSQL's default max_worker_processes, l.31-37
PGTUNE_MAINTENANCE_CAP_KB = 8 * KB_PER_GB  # l.175-203
PGTUNE_AUTOVACUUM_WORK_MEM_KB = 2 * KB_PER_GB  # l.489-515
PGTUNE_HUGE_PAGES_FROM_KB = 2 * KB_PER_GB  # l.151-161
WAL_BUFFERS_CAP_KB = 16 * KB_PER_MB  # l.235-255
WAL_BUFFERS_NEAR_CAP_KB = 14 * KB_PER_MB
# PGTune's memory parameters, all in kB.
MEMORY_PARAMETERS = ("shared_buffers", "effective_cache_size", "maintenance_work_mem", "wal_buffers", "work_mem",
                     "min_wal_size", "max_wal_size", "autovacuum_work_mem")


def pgtune_disk(disk_kind: str) -> str:
    """PGTune's storage type for one of the collection's disk kinds (network storage is its SAN)."""
    return PGTUNE_DISK[disk_kind]


def wal_buffers_kb(shared_buffers_kb: int) -> int:
    """3 % of shared_buffers, at most 16 MB; above 14 MB it rounds up to 16 MB; at least 32 kB."""
    wal = shared_buffers_kb * 3 // 100
    if wal > WAL_BUFFERS_CAP_KB:
        wal = WAL_BUFFERS_CAP_KB
    if WAL_BUFFERS_NEAR_CAP_KB < wal < WAL_BUFFERS_CAP_KB:
        wal = WAL_BUFFERS_CAP_KB
    return max(32, wal)


def pgtune_parallel(cpus: int) -> Dict[str, int]:
    """PGTune's parallel settings: none below 4 CPUs (PostgreSQL's defaults stay)."""
    if cpus < 4:
        return {}
    per_gather = min(4, int(math.ceil(cpus / 2.0)))
    return {
        "max_worker_processes": cpus,
        "max_parallel_workers_per_gather": per_gather,
        "max_parallel_workers": cpus,
        "max_parallel_maintenance_workers": per_gather,
    }


def pgtune_work_mem_kb(total_kb: int, shared_buffers_kb: int, max_connections: int, worker_processes: int) -> int:
    """What is left after shared_buffers, over three per connection and worker; at least 4 MB."""
    work_mem = (total_kb - shared_buffers_kb) // ((max_connections + worker_processes) * 3)
    return max(PGTUNE_WORK_MEM_FLOOR_KB, work_mem)


def pgtune_autovacuum_max_workers(cpus: int) -> Optional[int]:
    """PGTune raises autovacuum_max_workers from 16 CPUs on; below, PostgreSQL's 3 stays."""
    if cpus >= 32:
        return 5
    if cpus >= 16:
        return 4
    return None


def pgtune_web(memory_mb: int, cpus: int, max_connections: int, disk_kind: str, version: int) -> Dict[str, Any]:
    """PGTune's web/Linux output for these inputs: exactly the lines it prints, memory in kB.

    ``disk_kind`` is one of the collection's kinds; ``cpus`` whole CPUs (at least 1).
    """
    total_kb = memory_mb * KB_PER_MB
    shared_buffers = total_kb // 4
    maintenance = min(total_kb // 16, PGTUNE_MAINTENANCE_CAP_KB)
    parallel = pgtune_parallel(cpus)
    workers = parallel.get("max_worker_processes", PGTUNE_DEFAULT_WORKER_PROCESSES)
    disk = pgtune_disk(disk_kind)
    out: Dict[str, Any] = {
        "max_connections": max_connections,
        "shared_buffers": shared_buffers,
        "effective_cache_size": total_kb * 3 // 4,
        "maintenance_work_mem": maintenance,
        "checkpoint_completion_target": 0.9,
        "wal_buffers": wal_buffers_kb(shared_buffers),
        "default_statistics_target": 100,
        "random_page_cost": PGTUNE_RANDOM_PAGE_COST[disk],
        "effective_io_concurrency": PGTUNE_EFFECTIVE_IO_CONCURRENCY[disk],
        "work_mem": pgtune_work_mem_kb(total_kb, shared_buffers, max_connections, workers),
        "huge_pages": "try" if shared_buffers >= PGTUNE_HUGE_PAGES_FROM_KB else "off",
        "min_wal_size": 1 * KB_PER_GB,
        "max_wal_size": 4 * KB_PER_GB,
    }
    if version >= 12:
        out["jit"] = "off"
    out["wal_compression"] = "lz4" if version >= 15 else "on"
    av_workers = pgtune_autovacuum_max_workers(cpus)
    if av_workers is not None:
        out["autovacuum_max_workers"] = av_workers
    if maintenance >= PGTUNE_AUTOVACUUM_WORK_MEM_KB:
        out["autovacuum_work_mem"] = PGTUNE_AUTOVACUUM_WORK_MEM_KB
    out.update(parallel)
    return out


def format_kb(kb: int) -> str:
    """A size as PGTune prints it (and PostgreSQL reads it): GB or MB only when exact, else kB."""
    if kb % KB_PER_GB == 0:
        return "%dGB" % (kb // KB_PER_GB)
    if kb % KB_PER_MB == 0:
        return "%dMB" % (kb // KB_PER_MB)
    return "%dkB" % kb


_SIZE = re.compile(r"(\d+)(kB|MB|GB)")
_SIZE_UNITS = {"kB": 1, "MB": KB_PER_MB, "GB": KB_PER_GB}


def size_kb(value: Any) -> int:
    """kB of a size written as format_kb writes it (``64MB``), or of a plain number of kB."""
    if isinstance(value, int):
        return value
    match = _SIZE.fullmatch(str(value))
    if not match:
        raise ValueError("not a PostgreSQL size in kB, MB or GB: %r" % (value,))
    return int(match.group(1)) * _SIZE_UNITS[match.group(2)]


# ---------------------------------------------------------------------------------------------
# Huge pages: only where host tuning reserves them.
# ---------------------------------------------------------------------------------------------


def host_provides_huge_pages(host_tuning: Optional[Mapping[str, Any]] = None) -> bool:
    """Whether host tuning reserves huge pages for Postgres: only with ``vm.nr_hugepages`` > 0.

    roles/host_tuning sets no ``vm.nr_hugepages`` today, so this is False for every plan. Reserved
    huge pages would also sit outside the containers' memory limits, which the plan accounts in.
    """
    sysctl = (host_tuning or {}).get("sysctl", {})
    return int(sysctl.get("vm.nr_hugepages", 0) or 0) > 0


# ---------------------------------------------------------------------------------------------
# The worst case in memory, and fitting it inside the limit.
# ---------------------------------------------------------------------------------------------

# Private memory of one PostgreSQL process before it sorts or hashes anything: an estimate, from
# Andres Freund's measurement of an idle connection (under 2 MiB, "Measuring the Memory Overhead
# of a Postgres Connection", 2020), not a measurement of Dify's workload.
PROCESS_OVERHEAD_KB = 2 * KB_PER_MB
# Postmaster, checkpointer, background writer, WAL writer, autovacuum launcher, logical
# replication launcher.
AUXILIARY_PROCESSES = 6
# Without huge pages every process that maps all of shared_buffers holds one 8-byte page table
# entry per 4 KiB page: shared_buffers / 512.
PAGE_TABLE_DIVISOR = 512
# PostgreSQL's defaults where the settings do not name them.
DEFAULT_AUTOVACUUM_MAX_WORKERS = 3
# The smallest values every supported version accepts as given (15/16 raise a smaller
# autovacuum_work_mem to 1 MB; maintenance_work_mem's minimum is 1 MB before 17).
WORK_MEM_MIN_KB = 64
MAINTENANCE_WORK_MEM_MIN_KB = 1 * KB_PER_MB
AUTOVACUUM_WORK_MEM_MIN_KB = 1 * KB_PER_MB


class PostgresMemoryError(ValueError):
    """Even PostgreSQL's smallest memory settings exceed the limit in the worst case."""

    def __init__(self, memory_mb: int, need_mb: int, max_connections: int):
        self.memory_mb = memory_mb
        self.need_mb = need_mb
        self.max_connections = max_connections
        super().__init__("needs at least %d MiB for max_connections %d in the worst case, has %d MiB"
                         % (need_mb, max_connections, memory_mb))


def _autovacuum_memory_kb(settings: Mapping[str, Any]) -> int:
    value = settings.get("autovacuum_work_mem", -1)
    return size_kb(settings["maintenance_work_mem"]) if value in (-1, "-1") else size_kb(value)


def parallel_workers(settings: Mapping[str, Any]) -> int:
    """Parallel workers that may run at once (PostgreSQL's default 8 where the settings name none)."""
    return int(settings.get("max_parallel_workers", PGTUNE_DEFAULT_WORKER_PROCESSES))


def _holders(settings: Mapping[str, Any]) -> Dict[str, int]:
    """How many processes may hold each flexible memory setting at once."""
    return {
        # Connections and parallel workers (Dify starts no other background workers).
        "work_mem": settings["max_connections"] + parallel_workers(settings),
        "autovacuum_work_mem": settings.get("autovacuum_max_workers", DEFAULT_AUTOVACUUM_MAX_WORKERS),
        # One maintenance command at a time: a migration's CREATE INDEX, a manual VACUUM.
        "maintenance_work_mem": 1,
    }


def process_count(settings: Mapping[str, Any]) -> int:
    """Every PostgreSQL process at once: connections, parallel workers, autovacuum workers, auxiliaries."""
    holders = _holders(settings)
    return holders["work_mem"] + holders["autovacuum_work_mem"] + AUXILIARY_PROCESSES


def process_kb(settings: Mapping[str, Any]) -> int:
    """One process's memory besides work_mem: PROCESS_OVERHEAD_KB, and its page tables for
    shared_buffers unless huge pages hold them."""
    page_tables = 0 if settings.get("huge_pages") == "on" else size_kb(settings["shared_buffers"]) // PAGE_TABLE_DIVISOR
    return PROCESS_OVERHEAD_KB + page_tables


def fixed_kb(settings: Mapping[str, Any]) -> int:
    """The part of the worst case that no memory setting but shared_buffers changes."""
    return size_kb(settings["shared_buffers"]) + size_kb(settings["wal_buffers"]) + process_count(settings) * process_kb(settings)


def worst_case_kb(settings: Mapping[str, Any]) -> int:
    """Memory Postgres may use at once under ``settings`` (postgresql.conf names and values): an estimate.

    shared_buffers + wal_buffers, every connection and parallel worker holding one work_mem,
    every autovacuum worker its autovacuum_work_mem (else maintenance_work_mem), one maintenance
    command, and per process PROCESS_OVERHEAD_KB plus its page tables for shared_buffers. A query
    with several sort or hash nodes may hold more than one work_mem; temp_buffers are not counted.
    """
    holders = _holders(settings)
    return (fixed_kb(settings)
            + holders["work_mem"] * size_kb(settings["work_mem"])
            + holders["autovacuum_work_mem"] * _autovacuum_memory_kb(settings)
            + size_kb(settings["maintenance_work_mem"]))


# The memory settings lowered to fit, with the smallest value each may take.
FLEXIBLE_MINIMUMS_KB = {
    "work_mem": WORK_MEM_MIN_KB,
    "autovacuum_work_mem": AUTOVACUUM_WORK_MEM_MIN_KB,
    "maintenance_work_mem": MAINTENANCE_WORK_MEM_MIN_KB,
}


def smallest(settings: Mapping[str, Any]) -> Dict[str, Any]:
    """``settings`` with every flexible memory setting at its minimum."""
    out = dict(settings)
    for name, minimum in FLEXIBLE_MINIMUMS_KB.items():
        if name in settings:
            out[name] = format_kb(min(minimum, size_kb(settings[name])))
    return out


def share_memory(budget_kb: int, wanted_kb: Mapping[str, int], holders: Mapping[str, int]) -> Optional[Dict[str, int]]:
    """Scale every wanted value by one factor (at most 1) so that Σ holders × value fits ``budget_kb``;
    a value the factor would take below its minimum stays at the minimum and the rest share what is
    left. None when even the minimums do not fit."""
    minimum = {name: min(FLEXIBLE_MINIMUMS_KB[name], kb) for name, kb in wanted_kb.items()}
    pinned: Dict[str, int] = {}
    while True:
        free = [name for name in wanted_kb if name not in pinned]
        left = budget_kb - sum(holders[name] * kb for name, kb in pinned.items())
        demand = sum(holders[name] * wanted_kb[name] for name in free)
        if left < 0:
            return None
        factor = min(Fraction(1), Fraction(left, demand)) if demand else Fraction(1)
        below = [name for name in free if wanted_kb[name] * factor < minimum[name]]
        if not below:
            break
        pinned.update((name, minimum[name]) for name in below)
    shared = {name: int(wanted_kb[name] * factor) for name in free}
    shared.update(pinned)
    return shared


def share_autovacuum_budget(settings: Mapping[str, Any], over_kb: int, budget_workers: int) -> Dict[str, Any]:
    """``settings`` with autovacuum_work_mem lowered by up to ``over_kb`` in all, no further than the
    engine's autovacuum workers sharing what ``budget_workers`` (PGTune's count) would have held."""
    workers = _holders(settings)["autovacuum_work_mem"]
    current = _autovacuum_memory_kb(settings)
    share = max(AUTOVACUUM_WORK_MEM_MIN_KB, current * budget_workers // workers)
    lowered = max(share, current - -(-over_kb // workers))
    if lowered >= current:
        return dict(settings)
    return dict(settings, autovacuum_work_mem=format_kb(lowered))


def fewer_parallel_workers(settings: Mapping[str, Any], limit_kb: int) -> Dict[str, Any]:
    """Where even the smallest memory settings do not fit, as few fewer parallel workers as make
    them fit (none left at worst); ``settings`` unchanged when they fit or nothing would."""
    over = worst_case_kb(smallest(settings)) - limit_kb
    current = parallel_workers(settings)
    per_worker = process_kb(settings) + min(WORK_MEM_MIN_KB, size_kb(settings["work_mem"]))
    cut = -(-over // per_worker)
    if over <= 0 or cut > current:
        return dict(settings)
    out = dict(settings, max_parallel_workers=current - cut)
    for name, default in (("max_parallel_workers_per_gather", 2), ("max_parallel_maintenance_workers", 2)):
        out[name] = min(int(settings.get(name, default)), current - cut)
    return out


def lower_work_mem(settings: Mapping[str, Any], over_kb: int) -> Dict[str, Any]:
    """``settings`` with work_mem lowered by what ``over_kb`` needs, not below PostgreSQL's 64 kB."""
    current = size_kb(settings["work_mem"])
    lowered = max(min(WORK_MEM_MIN_KB, current), current - -(-over_kb // _holders(settings)["work_mem"]))
    return dict(settings, work_mem=format_kb(lowered)) if over_kb > 0 and lowered < current else dict(settings)


def fit_memory(settings: Mapping[str, Any], memory_mb: int, autovacuum_budget_workers: int) -> Dict[str, Any]:
    """``settings`` lowered only as far as needed for worst_case_kb to fit in ``memory_mb``.

    1. The engine's extra autovacuum workers share the memory PGTune's worker count
       (``autovacuum_budget_workers``) would use.
    2. Where even PostgreSQL's minimums would not fit, fewer parallel workers.
    3. work_mem alone, where 64 kB or more of it fits; else work_mem, autovacuum and maintenance
       memory by one factor, none below PostgreSQL's minimum (64 kB, 1 MB, 1 MB).

    Raises PostgresMemoryError when nothing fits.
    """
    limit_kb = memory_mb * KB_PER_MB
    over = worst_case_kb(settings) - limit_kb
    if over <= 0:
        return dict(settings)
    settings = share_autovacuum_budget(settings, over, autovacuum_budget_workers)
    settings = fewer_parallel_workers(settings, limit_kb)
    work_mem_only = lower_work_mem(settings, worst_case_kb(settings) - limit_kb)
    if worst_case_kb(work_mem_only) <= limit_kb:
        return work_mem_only
    holders = _holders(settings)
    wanted = {"work_mem": size_kb(settings["work_mem"]), "maintenance_work_mem": size_kb(settings["maintenance_work_mem"])}
    if "autovacuum_work_mem" in settings:
        wanted["autovacuum_work_mem"] = size_kb(settings["autovacuum_work_mem"])
    else:
        # Autovacuum workers use maintenance_work_mem: count them with it.
        holders = dict(holders, maintenance_work_mem=holders["maintenance_work_mem"] + holders["autovacuum_work_mem"])
    shared = share_memory(limit_kb - fixed_kb(settings), wanted, holders)
    if shared is None:
        need_kb = worst_case_kb(smallest(dict(settings, max_parallel_workers=0)))
        raise PostgresMemoryError(memory_mb, -(-need_kb // KB_PER_MB), settings["max_connections"])
    fitted = dict(settings)
    fitted.update((name, format_kb(kb)) for name, kb in shared.items())
    return fitted


# ---------------------------------------------------------------------------------------------
# Autovacuum for Dify's tables (a departure from PGTune, which only raises the worker count).
# ---------------------------------------------------------------------------------------------

# The cost budget is shared by all autovacuum workers; fast disks afford a larger one.
AUTOVACUUM_COST_LIMIT = {"hdd": 400, "ssd": 1000, "nvme": 2000, "virtual": 1000, "network": 1000}


def autovacuum_settings(cpus: int, disk_kind: str, naptime_s: int) -> Dict[str, Any]:
    """Autovacuum: 5%/2% scale factors, more workers with more CPUs, cost limit by disk kind."""
    workers = clamp(cpus // 4 + 2, 3, 6)
    # More workers share one budget: raise it with the worker count so each keeps its pace.
    cost_limit = AUTOVACUUM_COST_LIMIT[disk_kind] * workers // 3
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


def render(pgtune: Mapping[str, Any]) -> Dict[str, Any]:
    """PGTune's values as postgresql.conf takes them: memory in kB/MB/GB as PGTune prints it."""
    return {name: format_kb(value) if name in MEMORY_PARAMETERS else value for name, value in pgtune.items()}


def postgres_settings(memory_mb: int, cpus: float, disk_kind: str, max_connections: int, naptime_s: int,
                      version: int = DEFAULT_POSTGRES_VERSION, host_huge_pages: bool = False) -> Dict[str, Any]:
    """Every managed postgresql.conf setting, rendered as PostgreSQL accepts it.

    PGTune's web profile for ``memory_mb`` (the container's limit), ``cpus`` (whole CPUs, at least
    one) and ``max_connections`` on ``version``; ``host_huge_pages`` says whether the host reserves them
    (host_provides_huge_pages). Autovacuum is the engine's; memory is lowered to fit the worst case
    in ``memory_mb`` (fit_memory), which raises PostgresMemoryError when nothing fits.
    """
    if version not in SUPPORTED_POSTGRES_VERSIONS:
        raise ValueError("PostgreSQL %r is not supported (supported: %s)"
                         % (version, ", ".join(str(v) for v in SUPPORTED_POSTGRES_VERSIONS)))
    whole_cpus = max(1, int(cpus))
    settings = render(pgtune_web(memory_mb, whole_cpus, max_connections, disk_kind, version))
    settings["huge_pages"] = "try" if host_huge_pages and settings["huge_pages"] == "try" else "off"
    settings.update(autovacuum_settings(whole_cpus, disk_kind, naptime_s))
    budget_workers = pgtune_autovacuum_max_workers(whole_cpus) or DEFAULT_AUTOVACUUM_MAX_WORKERS
    return fit_memory(settings, memory_mb, budget_workers)
