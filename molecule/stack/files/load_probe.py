# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Load probe of the started stack, run ON THE TEST HOST (ansible.builtin.script): published-workflow runs
through the gateway at fixed concurrency, with CPU-bound code in the sandbox, while it reads every container's
CPU controller (cpu.stat) before and after each phase.

usage: load_probe.py URL PROJECT CPU_MS PHASE...
  URL      the gateway, e.g. http://127.0.0.1:80 (every request comes from one client address)
  PROJECT  the Compose project directory (/opt/dify): its containers are read with docker compose ps
  CPU_MS   the CPU time (process time, so contention makes it longer, not shorter) each run burns in the sandbox
  PHASE    CLIENTS:SECONDS[:RUNS], run one after the other: CLIENTS threads each sending blocking workflow runs
           one after the other (keep-alive) for SECONDS and until it has had RUNS answers (default 1), then
           waiting for the runs in flight; a client answered 429 waits 1 s before its next request. RUNS keeps
           the sample the same on a slow or busy machine: the phase lasts longer instead of counting fewer runs.

Prints one JSON document: {"cpus": N, "cgroup": "v1"|"v2", "containers": {name: cgroup path}, "phases": [{ "clients",
"seconds" (until the last answer), "requests", "min_client_runs" (the fewest answers one client had), "offered_rps"
(requests sent / seconds), "rps" (200s / seconds), "p50_s", "p99_s" (of every answer), "status": {code: count},
"pool_timeouts" (500s whose body carries SQLAlchemy's QueuePool message), "errors" (no HTTP answer: {message: count}),
"host_busy" (share of the host's CPU time not idle, /proc/stat), "stack_cpus" (CPU seconds of the containers per
second), "services": {service: {"nr_periods", "nr_throttled", "throttled_usec", "usage_usec", "throttled_pct"}}}]}. A
cgroup without a CPU quota counts no periods: nr_periods 0 is 0 % throttled. Services sum their replicas; the service
is the container name dify-SERVICE-N less its prefix and index. Standard library only.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

CGROUP_ROOT = "/sys/fs/cgroup"
WORKFLOW = "/v1/workflows/run"
POOL_MESSAGE = "QueuePool limit of size"
TIMEOUT_S = 180
RETRY_AFTER_S = 1.0


def burn_code(cpu_ms: int) -> str:
    """Python that burns CPU_MS ms of its own CPU time, then prints it."""
    return ("import time\nstart = time.process_time()\nn = 0\nwhile time.process_time() - start < %f:\n    n += 1\n"
            "print(n)\n" % (cpu_ms / 1000.0))


def containers(project: str) -> Dict[str, Dict[str, Any]]:
    ids = subprocess.run(["docker", "compose", "--project-directory", project, "ps", "--quiet"], capture_output=True,
                         text=True, check=True).stdout.split()
    inspected = json.loads(subprocess.run(["docker", "inspect"] + ids, capture_output=True, text=True, check=True).stdout)
    return {item["Name"].lstrip("/"): item for item in inspected}


def cgroup_version() -> str:
    return "v2" if os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers")) else "v1"


def cgroup_dir(item: Dict[str, Any], version: str) -> Optional[str]:
    """The container's CPU cgroup: under its CgroupParent with the cgroupfs driver, found by looking."""
    cid = item["Id"]
    parent = (item.get("HostConfig") or {}).get("CgroupParent") or "docker"
    bases = [CGROUP_ROOT] if version == "v2" else [os.path.join(CGROUP_ROOT, name) for name in ("cpu", "cpu,cpuacct")]
    for base in bases:
        for relative in (os.path.join(parent.strip("/"), cid), os.path.join("docker", cid),
                         os.path.join(parent.strip("/"), "docker-%s.scope" % cid)):
            path = os.path.join(base, relative)
            if os.path.exists(os.path.join(path, "cpu.stat")):
                return path
    for base in bases:
        for directory, subdirectories, _files in os.walk(base):
            for name in subdirectories:
                if cid in name and os.path.exists(os.path.join(directory, name, "cpu.stat")):
                    return os.path.join(directory, name)
    return None


def read_cpu(path: str, version: str) -> Dict[str, int]:
    """nr_periods, nr_throttled, throttled_usec and usage_usec of a cgroup (v1: cpuacct.usage, throttled_time ns)."""
    values: Dict[str, int] = {}
    with open(os.path.join(path, "cpu.stat")) as handle:
        for line in handle:
            key, _sep, value = line.partition(" ")
            values[key] = int(value)
    stat = {"nr_periods": values.get("nr_periods", 0), "nr_throttled": values.get("nr_throttled", 0)}
    if version == "v2":
        stat["throttled_usec"] = values.get("throttled_usec", 0)
        stat["usage_usec"] = values.get("usage_usec", 0)
    else:
        stat["throttled_usec"] = values.get("throttled_time", 0) // 1000
        # cpuacct: mounted with cpu (cpu,cpuacct) or on its own, at the same place in its hierarchy.
        relative = os.path.relpath(path, os.path.join(CGROUP_ROOT, path[len(CGROUP_ROOT) + 1:].split("/", maxsplit=1)[0]))
        for hierarchy in ("cpu,cpuacct", "cpuacct", "cpu"):
            usage = os.path.join(CGROUP_ROOT, hierarchy, relative, "cpuacct.usage")
            if os.path.exists(usage):
                with open(usage) as handle:
                    stat["usage_usec"] = int(handle.read()) // 1000
                break
        else:
            stat["usage_usec"] = 0
    return stat


def host_times() -> Tuple[int, int]:
    """(busy, total) jiffies of every CPU, /proc/stat's first line."""
    with open("/proc/stat") as handle:
        fields = [int(value) for value in handle.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def service_of(name: str) -> str:
    match = re.match(r"^[^-]+-(.+)-\d+$", name)
    return match.group(1) if match else name


class Client(threading.Thread):
    def __init__(self, url: str, body: bytes, until: float, runs: int, results: List[Tuple[float, Any, bool]]) -> None:
        super().__init__(daemon=True)
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port or 80
        self.body, self.until, self.runs, self.results = body, until, runs, results
        self.answered = 0

    def run(self) -> None:
        connection: Optional[http.client.HTTPConnection] = None
        while time.monotonic() < self.until or self.answered < self.runs:
            if connection is None:
                connection = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT_S)
            started = time.monotonic()
            try:
                connection.request("POST", WORKFLOW, body=self.body, headers={
                    "Content-Type": "application/json", "Authorization": "Bearer app-difyops-load-probe"})
                answer = connection.getresponse()
                data = answer.read()
                status: Any = answer.status
                pool = status == 500 and POOL_MESSAGE.encode() in data
                if answer.getheader("Connection", "").lower() == "close":
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException) as exc:
                status, pool = "error: %s" % type(exc).__name__, False
                connection.close()
                connection = None
            self.results.append((time.monotonic() - started, status, pool))
            self.answered += 1
            if status == 429:
                # A client honouring the refusal waits before it asks again (an instant retry would count a
                # storm of 429s as offered load).
                time.sleep(RETRY_AFTER_S)
        if connection is not None:
            connection.close()


def percentile(values: List[float], share: float) -> Optional[float]:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 3)


def phase(url: str, code: str, clients: int, seconds: float, runs: int, cgroups: Dict[str, str], version: str) -> Dict[str, Any]:
    before = {name: read_cpu(path, version) for name, path in cgroups.items()}
    host_before = host_times()
    results: List[Tuple[float, Any, bool]] = []
    body = json.dumps({"inputs": {"code": code}, "response_mode": "blocking", "user": "difyops-load-probe"}).encode()
    started = time.monotonic()
    threads = [Client(url, body, started + seconds, runs, results) for _client in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    took = time.monotonic() - started
    host_after = host_times()
    after = {name: read_cpu(path, version) for name, path in cgroups.items()}
    services: Dict[str, Dict[str, Any]] = {}
    for name in cgroups:
        summed = services.setdefault(service_of(name), {"nr_periods": 0, "nr_throttled": 0, "throttled_usec": 0, "usage_usec": 0})
        for key in summed:
            summed[key] += after[name][key] - before[name][key]
    for summed in services.values():
        summed["throttled_pct"] = round(100.0 * summed["nr_throttled"] / summed["nr_periods"], 2) if summed["nr_periods"] else 0.0
    status: Dict[str, int] = {}
    for _seconds, code_seen, _pool in results:
        status[str(code_seen)] = status.get(str(code_seen), 0) + 1
    busy, total = host_after[0] - host_before[0], host_after[1] - host_before[1]
    return {"clients": clients, "seconds": round(took, 2), "requests": len(results),
            "min_client_runs": min(thread.answered for thread in threads),
            "offered_rps": round(len(results) / took, 2), "rps": round(status.get("200", 0) / took, 2),
            "p50_s": percentile([item[0] for item in results], 0.50), "p99_s": percentile([item[0] for item in results], 0.99),
            "status": status, "pool_timeouts": sum(1 for item in results if item[2]),
            "host_busy": round(busy / total, 3) if total else None,
            "stack_cpus": round(sum(item["usage_usec"] for item in services.values()) / 1e6 / took, 2),
            "services": services}


def main(argv: List[str]) -> int:
    if len(argv) < 5:
        sys.stderr.write(__doc__ or "")
        return 2
    url, project, cpu_ms = argv[1], argv[2], int(argv[3])
    version = cgroup_version()
    found = containers(project)
    cgroups: Dict[str, str] = {}
    missing = []
    for name, item in sorted(found.items()):
        path = cgroup_dir(item, version)
        if path is None:
            missing.append(name)
        else:
            cgroups[name] = path
    report: Dict[str, Any] = {"cpus": os.cpu_count(), "cgroup": version, "cpu_ms": cpu_ms, "containers": cgroups,
                              "missing": missing, "phases": []}
    if not missing:
        for spec in argv[4:]:
            clients, seconds, runs = (spec.split(":") + ["1"])[:3]
            report["phases"].append(phase(url, burn_code(cpu_ms), int(clients), float(seconds), int(runs), cgroups, version))
    print(json.dumps(report))
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
