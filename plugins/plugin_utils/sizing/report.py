# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reports of a plan for people: a Markdown page per host and an SVG chart of its memory."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping
from xml.sax.saxutils import escape

from .catalog import VECTOR_STORES
from .units import human_mb

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac", "#1f77b4", "#d62728", "#2ca02c")
RESERVE_COLOUR = "#6b6b6b"
FREE_COLOUR = "#e8e8e8"


def key_settings(service: str, settings: Mapping[str, Any]) -> str:
    """The one-line summary of a service's most important settings."""
    if service == "api" and "api" in settings:
        s = settings["api"]
        return "%d gevent processes x %d greenlets; pool %d+%d" % (
            s["server_worker_amount"], s["server_worker_connections"], s["sqlalchemy_pool_size"], s["sqlalchemy_max_overflow"])
    if service == "worker" and "worker" in settings:
        s = settings["worker"]
        return "%d %s processes x %d greenlets; pool %d+%d" % (
            s["processes"], s["celery_worker_class"], s["celery_worker_amount"], s["sqlalchemy_pool_size"],
            s["sqlalchemy_max_overflow"])
    if service == "db_postgres" and "postgres" in settings:
        s = settings["postgres"]["server"]
        return "shared_buffers %s, work_mem %s, max_connections %d" % (s["shared_buffers"], s["work_mem"], s["max_connections"])
    if service == "pgbouncer" and "pgbouncer" in settings:
        s = settings["pgbouncer"]
        return "%s pooling: %d clients over %d server connections" % (
            s["pool_mode"], s["max_client_conn"], s["default_pool_size"])
    if service == "redis" and "redis" in settings:
        s = settings["redis"]
        return "maxmemory %d MiB, %s" % (s["maxmemory_mb"], s["maxmemory_policy"])
    if service == "nginx" and "nginx" in settings:
        s = settings["nginx"]
        return "%d workers x %d connections; body %d MB; %d r/s" % (
            s["worker_processes"], s["worker_connections"], s["client_max_body_size_mb"], s["rate_limit_rps"])
    if service in VECTOR_STORES and "vector_store" in settings:
        s = settings["vector_store"]
        if "gomemlimit_mb" in s:
            return "GOMEMLIMIT %d MiB" % s["gomemlimit_mb"]
        if "server" in s:
            return "shared_buffers %s" % s["server"]["shared_buffers"]
    if service == "inference" and "inference" in settings:
        s = settings["inference"]
        if s.get("enabled"):
            return "%s: %s %s on GPUs %s" % (s["engine"], s["model"], s["quantization"], ",".join(map(str, s["gpu_indexes"])))
        return "disabled: %s" % s["reason"]
    return ""


def host_markdown(plan: Mapping[str, Any], fleet: Mapping[str, Any]) -> str:
    """A Markdown report of one host's plan."""
    r = plan["resources"]
    lines: List[str] = [
        "# Dify plan for %s" % plan["name"],
        "",
        "Profile **%s**; components: %s; %d vCPUs (%.2f kept for the OS), %s memory (%s kept for the OS "
        "and the container engine); %s of the %s usable is handed out."
        % (plan["profile"], ", ".join(plan["components"]), r["vcpus"], r["cpu_reserve"], human_mb(r["memory_mb"]),
           human_mb(r["os_reserve_mb"]), human_mb(r["allocated_mb"]), human_mb(r["usable_mb"])),
        "",
        "| service | CPU quota | CPU shares | memory limit | memory reserved | swap | key settings |",
        "| --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for name, svc in plan["services"].items():
        swap = "never" if svc["memswap_mb"] is not None else "allowed"
        quota = "%.2f" % svc["cpus"] if svc["cpu_quota"] else "none"
        each = " each x %d" % svc["replicas"] if svc["replicas"] > 1 else ""
        lines.append("| %s | %s | %d | %s%s | %s | %s | %s |" % (
            name, quota, svc["cpu_shares"], human_mb(svc["memory_mb"]), each, human_mb(svc["memory_reserved_mb"]),
            swap, key_settings(name, plan["settings"])))
    tuning = plan["host_tuning"]
    swap = tuning["swap"]
    lines += [
        "",
        "Host: swap %s; transparent huge pages %s; sysctl %s." % (
            "off" if swap["policy"] == "off" else "swapfile of %s (swappiness %d)" % (human_mb(swap["size_mb"]), swap["swappiness"]),
            tuning["transparent_hugepage"], ", ".join("%s=%s" % kv for kv in sorted(tuning["sysctl"].items()))),
        "Slice `%s`: no CPUQuota, CPUWeight %d, MemoryHigh %s, MemoryMax %s; Docker logs %d × %d MB." % (
            tuning["slice"]["name"], tuning["slice"]["cpu_weight"],
            human_mb(tuning["slice"]["memory_high_mb"]), human_mb(tuning["slice"]["memory_max_mb"]),
            tuning["docker"]["log_max_files"], tuning["docker"]["log_max_size_mb"]),
    ]
    if plan["name"] == fleet.get("worker_beat_host"):
        lines.append("This host runs worker_beat, the database migrations and the fleet's plugin daemon.")
    lines += ["", "![memory](%s-memory.svg)" % plan["name"], ""]
    return "\n".join(lines)


def memory_svg(plan: Mapping[str, Any], width: int = 720) -> str:
    """A horizontal bar of the host's memory: OS reserve, each service's limit, what is left."""
    r = plan["resources"]
    total = float(r["memory_mb"])
    segments = [("OS reserve", r["os_reserve_mb"], RESERVE_COLOUR)]
    for i, (name, svc) in enumerate(plan["services"].items()):
        segments.append((name, svc["memory_mb"] * svc["replicas"], PALETTE[i % len(PALETTE)]))
    segments.append(("unallocated", max(0, r["usable_mb"] - r["allocated_mb"]), FREE_COLOUR))
    bar_y, bar_h, legend_y = 40, 36, 96
    rows = (len(segments) + 2) // 3
    height = legend_y + rows * 22 + 10
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
           'font-family="sans-serif" font-size="12">' % (width, height, width, height),
           '<title>Memory plan of %s</title>' % escape(plan["name"]),
           '<text x="10" y="22" font-size="14">%s: %s of memory</text>' % (escape(plan["name"]), human_mb(r["memory_mb"]))]
    x = 10.0
    scale = (width - 20) / total
    for name, mb, colour in segments:
        w = mb * scale
        out.append('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"><title>%s: %s</title></rect>'
                   % (x, bar_y, w, bar_h, colour, escape(name), human_mb(mb)))
        x += w
    for i, (name, mb, colour) in enumerate(segments):
        lx, ly = 10 + (i % 3) * ((width - 20) // 3), legend_y + (i // 3) * 22
        out.append('<rect x="%d" y="%d" width="12" height="12" fill="%s"/>' % (lx, ly - 10, colour))
        out.append('<text x="%d" y="%d">%s %s</text>' % (lx + 18, ly, escape(name), human_mb(mb)))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def fleet_summary(plan: Mapping[str, Any]) -> List[str]:
    """One line per host and a fleet line, for the play's output."""
    lines = []
    for name, host in plan["hosts"].items():
        r = host["resources"]
        lines.append("%s: %s profile, %s; %s of %s usable memory planned (%d%%)" % (
            name, host["profile"], ", ".join(host["services"]), human_mb(r["allocated_mb"]), human_mb(r["usable_mb"]),
            100 * r["allocated_mb"] // max(1, r["usable_mb"])))
    fleet = plan["fleet"]
    lines.append("fleet: vector store %s, Postgres max_connections %d (pooler: %s), worker_beat on %s" % (
        fleet["vector_store"], fleet["postgres_max_connections"], fleet["postgres_pooler"], fleet["worker_beat_host"]))
    return lines


def reports(plan: Mapping[str, Any]) -> Dict[str, str]:
    """Every report file of a plan, by file name."""
    files = {}
    for name, host in plan["hosts"].items():
        files["%s.md" % name] = host_markdown(host, plan["fleet"])
        files["%s-memory.svg" % name] = memory_svg(host)
    return files
