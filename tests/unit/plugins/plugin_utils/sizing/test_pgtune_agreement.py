"""The PostgreSQL settings agree with PGTune's own results (data/pgtune-web-vectors.tsv, see data/README.md).

Two layers are checked on every row. ``pgtune_web`` must print exactly what PGTune printed. The
engine's ``postgres_settings`` must hold every parameter PGTune prints, equal to PGTune's where
PGTune is exact and within ±10 % for memory, except for its documented departures, each asserted
and counted here: huge_pages off (host tuning reserves no huge pages), more autovacuum workers, and
memory lowered so that the worst case fits the limit.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import os
from collections import Counter
from typing import Any, Dict, List, Tuple

import pytest

from ansible_collections.difyops.dify.plugins.plugin_utils.sizing.postgres import (
    MEMORY_PARAMETERS, PostgresMemoryError, autovacuum_settings, format_kb, host_provides_huge_pages, pgtune_web, postgres_settings,
    render, smallest, worst_case_kb)

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "pgtune-web-vectors.tsv")
SHA256 = "ffbc31dd386920958661f01aedfa227efc00c446c920a682a47a9d934ca646ed"
# Every parameter of the table; io_method and io_workers are PostgreSQL 18 only, never printed here.
PARAMETERS = ("max_connections", "shared_buffers", "effective_cache_size", "maintenance_work_mem",
              "checkpoint_completion_target", "wal_buffers", "default_statistics_target", "random_page_cost",
              "effective_io_concurrency", "work_mem", "huge_pages", "min_wal_size", "max_wal_size",
              "max_worker_processes", "max_parallel_workers_per_gather", "max_parallel_workers",
              "max_parallel_maintenance_workers", "jit", "wal_compression", "autovacuum_work_mem",
              "autovacuum_max_workers")
NUMBERS = ("checkpoint_completion_target", "random_page_cost")
# PGTune's storage types as the collection's disk kinds.
DISK_KIND = {"hdd": "hdd", "ssd": "ssd", "nvme": "nvme", "san": "network"}
NAPTIME_S = 15

# The agreement figures over the whole table; a change to the engine that moves them must say why.
ROWS = 3495
COMPARED = 58684
WITHIN_10_PERCENT = 53586
DEPARTURES = {"huge_pages": 1933, "autovacuum_max_workers": 1430, "lowered to fit": 1664, "fewer parallel workers": 71}
ROWS_LOWERED_TO_FIT = 1299
ROWS_REFUSED = 395


@functools.lru_cache(maxsize=None)
def table() -> Tuple[Dict[str, str], ...]:
    with open(DATA, "rb") as handle:
        data = handle.read()
    assert hashlib.sha256(data).hexdigest() == SHA256, "data/pgtune-web-vectors.tsv changed: see data/README.md"
    return tuple(csv.DictReader(io.StringIO(data.decode("utf-8")), delimiter="\t"))


def inputs(row: Dict[str, str]) -> Tuple[int, int, int, str, int]:
    return (int(row["total_memory_mb"]), int(row["cpu_num"]), int(row["max_connections"]), DISK_KIND[row["hd_type"]],
            int(row["db_version"]))


def printed(row: Dict[str, str]) -> Dict[str, str]:
    return {name: row[name] for name in PARAMETERS if row[name] != ""}


def same(name: str, ours: Any, theirs: str) -> bool:
    """Equal as PGTune prints it (a JS number prints 4 for 4.0)."""
    if name in NUMBERS:
        return float(ours) == float(theirs)
    return str(ours) == theirs


def within(ours_kb: int, theirs_kb: int) -> bool:
    return abs(ours_kb - theirs_kb) <= 0.1 * theirs_kb


def test_table_is_the_recorded_one():
    rows = table()
    assert len(rows) == ROWS
    assert {row["db_version"] for row in rows} == {"15", "16", "17"}
    assert {row["hd_type"] for row in rows} == set(DISK_KIND)
    assert {row["os"] for row in rows} == {"linux"} and {row["db_type"] for row in rows} == {"web"}
    assert {row["db_size"] for row in rows} == {"mid_ram"}
    assert not any(row["io_method"] or row["io_workers"] for row in rows)


def test_pgtune_layer_prints_what_pgtune_printed_on_every_row():
    mismatches: List[str] = []
    for row in table():
        memory_mb, cpus, connections, disk, version = inputs(row)
        ours = pgtune_web(memory_mb, cpus, connections, disk, version)
        theirs = printed(row)
        if set(ours) != set(theirs):
            mismatches.append("row %s: parameters %s" % (row["row_id"], sorted(set(ours) ^ set(theirs))))
            continue
        for name, value in render(ours).items():
            exact = same(name, value, theirs[name])
            if name in MEMORY_PARAMETERS:
                exact = exact and ours[name] == int(row[name + "_kb"])
            if not exact:
                mismatches.append("row %s: %s = %r, PGTune %r" % (row["row_id"], name, value, theirs[name]))
    assert not mismatches, "%d mismatches, first: %s" % (len(mismatches), mismatches[:5])


PARALLEL = ("max_parallel_workers", "max_parallel_workers_per_gather", "max_parallel_maintenance_workers")


def unfitted(settings: Dict[str, Any], pgtune: Dict[str, Any]) -> Dict[str, Any]:
    """The engine's settings with PGTune's memory values and parallel workers, as before fitting."""
    out = dict(settings, **{name: format_kb(pgtune[name]) for name in MEMORY_PARAMETERS if name in pgtune})
    out.update((name, pgtune[name]) for name in PARALLEL if name in pgtune)
    return out


def compare_row(row: Dict[str, str], tally: Counter) -> List[str]:
    """Compare one row; count every comparison and departure in ``tally``; return what is wrong."""
    memory_mb, cpus, connections, disk, version = inputs(row)
    pgtune = pgtune_web(memory_mb, cpus, connections, disk, version)
    try:
        ours = postgres_settings(memory_mb, cpus, disk, connections, NAPTIME_S, version=version)
    except PostgresMemoryError as exc:
        # Departure: refused, because even PostgreSQL's smallest memory settings exceed the limit.
        tally["rows refused"] += 1
        least = dict(render(pgtune), work_mem="64kB", maintenance_work_mem="1MB", huge_pages="off",
                     max_parallel_workers=0, **autovacuum_settings(cpus, disk, NAPTIME_S))
        if "autovacuum_work_mem" in least:
            least["autovacuum_work_mem"] = "1MB"
        need_kb = worst_case_kb(least)
        if need_kb <= memory_mb * 1024 or exc.need_mb != -(-need_kb // 1024):
            return ["row %s: refused (%s) though the minimums need %d kB" % (row["row_id"], exc, need_kb)]
        return []
    worst_fits = worst_case_kb(unfitted(ours, pgtune)) <= memory_mb * 1024
    wrong = []
    if worst_case_kb(ours) > memory_mb * 1024:
        wrong.append("worst case %d kB over the limit" % worst_case_kb(ours))
    lowered = False
    for name, theirs in printed(row).items():
        tally["compared"] += 1
        if name not in ours:
            wrong.append("%s missing" % name)
            continue
        if name in MEMORY_PARAMETERS:
            ours_kb, theirs_kb = pgtune_kb(ours[name]), int(row[name + "_kb"])
            tally["within"] += within(ours_kb, theirs_kb)
            if ours[name] == theirs:
                continue
            # Departure: lowered only where PGTune's values would exceed the limit in the worst case.
            if worst_fits or ours_kb > theirs_kb:
                wrong.append("%s = %s, PGTune %s" % (name, ours[name], theirs))
            if not within(ours_kb, theirs_kb):
                tally["lowered to fit"] += 1
            lowered = True
            continue
        if same(name, ours[name], theirs):
            tally["within"] += 1
        elif name == "huge_pages":
            # Departure: host tuning reserves no huge pages, so PGTune's `try` would find none.
            tally["huge_pages"] += 1
            if (theirs, ours[name], host_provides_huge_pages(None)) != ("try", "off", False):
                wrong.append("huge_pages = %s, PGTune %s" % (ours[name], theirs))
        elif name in PARALLEL:
            # Departure: fewer parallel workers only where even the smallest memory settings would not fit.
            tally["fewer parallel workers"] += 1
            lowered = True
            if ours[name] > int(theirs) or worst_case_kb(smallest(unfitted(ours, pgtune))) <= memory_mb * 1024:
                wrong.append("%s = %s, PGTune %s" % (name, ours[name], theirs))
        elif name == "autovacuum_max_workers":
            # Departure: the engine's autovacuum for Dify's busy tables runs at least PGTune's workers.
            tally["autovacuum_max_workers"] += 1
            if ours[name] != autovacuum_settings(cpus, disk, NAPTIME_S)[name] or ours[name] < int(theirs):
                wrong.append("autovacuum_max_workers = %s, PGTune %s" % (ours[name], theirs))
        else:
            wrong.append("%s = %r, PGTune %r" % (name, ours[name], theirs))
    tally["rows lowered to fit"] += lowered
    return ["row %s: %s" % (row["row_id"], w) for w in wrong]


def pgtune_kb(value: str) -> int:
    units = {"kB": 1, "MB": 1024, "GB": 1024 * 1024}
    return int(value[:-2]) * units[value[-2:]]


def test_engine_agrees_with_pgtune_over_the_whole_table():
    tally: Counter = Counter()
    wrong: List[str] = []
    for row in table():
        wrong += compare_row(row, tally)
    assert not wrong, "%d disagreements, first: %s" % (len(wrong), wrong[:5])
    figures = (len(table()), tally["rows refused"], tally["compared"], tally["within"],
               {name: tally[name] for name in DEPARTURES}, tally["rows lowered to fit"])
    print("PGTune agreement: %d rows, %d refused, %d parameters compared, %d (%.2f %%) within ±10 %%, departures %s, "
          "%d rows with memory lowered to fit" % (figures[0], figures[1], figures[2], figures[3],
                                                  100.0 * figures[3] / figures[2], figures[4], figures[5]))
    assert figures == (ROWS, ROWS_REFUSED, COMPARED, WITHIN_10_PERCENT, DEPARTURES, ROWS_LOWERED_TO_FIT)
    # Every parameter outside ±10 % is one of the departures counted above.
    assert COMPARED - WITHIN_10_PERCENT == sum(DEPARTURES.values())


@pytest.mark.parametrize("version", [15, 16, 17])
def test_newer_pgtune_settings_for_the_stack_versions(version):
    settings = postgres_settings(4096, 4, "ssd", 100, NAPTIME_S, version=version)
    assert settings["jit"] == "off" and settings["wal_compression"] == "lz4"
