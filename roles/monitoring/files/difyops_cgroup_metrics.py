# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Container metrics of a Dify host for node_exporter's textfile collector (role difyops.dify.monitoring).

Reads the cgroup files and writes, under cAdvisor's metric names and labels, so that the alert
rules and the dashboard read either source alike (cgroup v2 files; v1 in brackets, for hosts that
still boot the legacy hierarchy):

- container_memory_working_set_bytes: memory.current less memory.stat's inactive_file (what the
  kernel cannot simply reclaim; cAdvisor's definition) [memory.usage_in_bytes, total_inactive_file];
- container_memory_usage_bytes: memory.current [memory.usage_in_bytes];
- container_spec_memory_limit_bytes: memory.max, 0 when unlimited as cAdvisor reports
  [memory.limit_in_bytes];
- container_oom_events_total: the kernel's OOM kills of the cgroup's tasks, counted from the
  kernel log (/dev/kmsg, as cAdvisor counts them) since the collector started, or memory.events'
  oom_kill [memory.oom_control's oom_kill] where that is higher. The log is what sees a container
  killed at its limit: Docker restarts it in a new cgroup, whose own counter starts from zero;
- container_cpu_usage_seconds_total: cpu.stat's usage_usec [cpuacct.usage, in nanoseconds].

One series per cgroup under each --cgroup root (the stack's dify.slice and its Docker containers,
the host's system.slice units such as nginx and PostgreSQL), labelled ``id`` (the cgroup's path
from the hierarchy's root). A Docker container's cgroup (``docker-<id>.scope`` or ``<id>``) also
gets ``name`` and the ``container_label_com_docker_compose_project``/``_service`` labels, read from
Docker's own record of the container (``<docker dir>/<id>/config.v2.json``).

The file is written whole and renamed into place, so node_exporter never reads half of it. Python's
standard library only: it runs on the host's python3.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import sys
import tempfile
import time
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

FAMILIES = (
    ("container_memory_working_set_bytes", "gauge", "Memory in use less inactive file pages."),
    ("container_memory_usage_bytes", "gauge", "Memory in use (memory.current, v1 memory.usage_in_bytes)."),
    ("container_spec_memory_limit_bytes", "gauge", "The memory limit (memory.max, v1 memory.limit_in_bytes); 0 when unlimited."),
    ("container_oom_events_total", "counter", "OOM kills in the cgroup."),
    ("container_cpu_usage_seconds_total", "counter", "CPU time of the cgroup."),
)
COMPOSE_LABELS = {"com.docker.compose.project": "container_label_com_docker_compose_project",
                  "com.docker.compose.service": "container_label_com_docker_compose_service"}
_CONTAINER = re.compile(r"^(?:docker-)?([0-9a-f]{64})(?:\.scope)?$")

Sample = Tuple[Dict[str, str], Dict[str, float]]


def read_text(path: str) -> Optional[str]:
    """The file's content, or None when the cgroup went away or the controller is off."""
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError):
        return None


def read_keyed(path: str) -> Dict[str, int]:
    """A flat-keyed cgroup file (memory.stat, memory.events, cpu.stat) as a mapping."""
    values: Dict[str, int] = {}
    for line in (read_text(path) or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            values[parts[0]] = int(parts[1])
    return values


# cgroup v1 reports "no limit" as the largest page-aligned 64-bit value; anything this large is none.
V1_UNLIMITED = 1 << 62


def _number(text: Optional[str]) -> Optional[int]:
    value = (text or "").strip()
    return int(value) if value.isdigit() else None


def cgroup_values(root: str, cgroup: str) -> Optional[Dict[str, float]]:
    """The metrics of one cgroup (cgroup v2); None without a memory controller there."""
    path = os.path.join(root, cgroup.lstrip("/"))
    usage = _number(read_text(os.path.join(path, "memory.current")))
    if usage is None:
        return None
    limit = _number(read_text(os.path.join(path, "memory.max")))
    return {
        "container_memory_working_set_bytes": max(usage - read_keyed(os.path.join(path, "memory.stat")).get("inactive_file", 0), 0),
        "container_memory_usage_bytes": usage,
        "container_spec_memory_limit_bytes": limit or 0,
        "container_oom_events_total": read_keyed(os.path.join(path, "memory.events")).get("oom_kill", 0),
        "container_cpu_usage_seconds_total": read_keyed(os.path.join(path, "cpu.stat")).get("usage_usec", 0) / 1e6,
    }


def cgroup_values_v1(root: str, cgroup: str) -> Optional[Dict[str, float]]:
    """The metrics of one cgroup of the legacy hierarchy (memory and cpuacct controllers)."""
    memory = os.path.join(root, "memory", cgroup.lstrip("/"))
    usage = _number(read_text(os.path.join(memory, "memory.usage_in_bytes")))
    if usage is None:
        return None
    limit = _number(read_text(os.path.join(memory, "memory.limit_in_bytes"))) or 0
    cpu = _number(read_text(os.path.join(root, "cpuacct", cgroup.lstrip("/"), "cpuacct.usage"))) or 0
    return {
        "container_memory_working_set_bytes": max(usage - read_keyed(os.path.join(memory, "memory.stat")).get("total_inactive_file", 0), 0),
        "container_memory_usage_bytes": usage,
        "container_spec_memory_limit_bytes": limit if limit < V1_UNLIMITED else 0,
        "container_oom_events_total": read_keyed(os.path.join(memory, "memory.oom_control")).get("oom_kill", 0),
        "container_cpu_usage_seconds_total": cpu / 1e9,
    }


_OOM_KILL = re.compile(r"oom-kill:.*?\btask_memcg=([^,\s]+)")


class OomWatch:
    """OOM kills the kernel logs (``oom-kill:... task_memcg=<cgroup>``), counted per cgroup of the
    killed task, from the log's end when the collector starts. The kernel names the cgroup from
    the hierarchy's true root; a host in a container sees a suffix of it."""

    def __init__(self, path: str) -> None:
        self.counts: Dict[str, int] = {}
        self.pending = b""
        try:
            self.fd: Optional[int] = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            os.lseek(self.fd, 0, os.SEEK_END)
        except OSError:
            self.fd = None

    def poll(self) -> None:
        """Read what the kernel logged since the last poll (one record per read on /dev/kmsg)."""
        while self.fd is not None:
            try:
                record = os.read(self.fd, 16384)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # records overwritten before they were read
                    continue
                return
            if not record:
                return
            lines = (self.pending + record).split(b"\n")
            self.pending = lines.pop()
            for line in lines:
                match = _OOM_KILL.search(line.decode("utf-8", "replace"))
                if match:
                    self.counts[match.group(1)] = self.counts.get(match.group(1), 0) + 1

    def kills(self, cgroup: str) -> int:
        """Kills logged for ``cgroup`` (a path from the visible root), whatever prefix the kernel saw."""
        if cgroup == "/":
            return 0
        # ``cgroup`` starts with "/", so a suffix match is a match of whole path components.
        return sum(n for path, n in self.counts.items() if path.endswith(cgroup))


def docker_labels(docker_dir: str, container_id: str) -> Dict[str, str]:
    """The container's name and Compose labels from Docker's record; empty when it has none."""
    text = read_text(os.path.join(docker_dir, container_id, "config.v2.json"))
    try:
        record = json.loads(text) if text else {}
    except ValueError:
        return {}
    labels = {"name": str(record.get("Name") or "").lstrip("/")}
    for docker_label, prometheus_label in COMPOSE_LABELS.items():
        value = ((record.get("Config") or {}).get("Labels") or {}).get(docker_label)
        if value:
            labels[prometheus_label] = str(value)
    return labels


def walk(root: str, start: str) -> Iterator[str]:
    """``start`` (a cgroup path such as /dify.slice) and every cgroup below it, parents first."""
    top = os.path.join(root, start.strip("/"))
    for directory, children, _files in os.walk(top):
        children.sort()
        yield "/" + os.path.relpath(directory, root).replace(os.sep, "/").lstrip("./")


def unified(root: str) -> bool:
    """Whether ``root`` is a cgroup v2 hierarchy (else the legacy one, a controller per directory)."""
    return os.path.exists(os.path.join(root, "cgroup.controllers"))


def collect(root: str, starts: Sequence[str], docker_dir: str, oom: Optional[OomWatch] = None) -> List[Sample]:
    """Every cgroup's labels and values, in a stable order."""
    samples: List[Sample] = []
    seen = set()
    v2 = unified(root)
    read, tree = (cgroup_values, root) if v2 else (cgroup_values_v1, os.path.join(root, "memory"))
    for start in starts:
        for cgroup in walk(tree, start):
            values = read(root, cgroup)
            if cgroup in seen or values is None:
                continue
            seen.add(cgroup)
            if oom is not None:
                values["container_oom_events_total"] = max(values["container_oom_events_total"], oom.kills(cgroup))
            labels = {"id": cgroup}
            match = _CONTAINER.match(cgroup.rsplit("/", 1)[-1])
            if match:
                labels.update(docker_labels(docker_dir, match.group(1)))
            samples.append((labels, values))
    return samples


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(samples: Sequence[Sample]) -> str:
    """The samples in Prometheus' text format, one family after another."""
    lines: List[str] = []
    for name, kind, text in FAMILIES:
        lines += ["# HELP %s %s" % (name, text), "# TYPE %s %s" % (name, kind)]
        for labels, values in samples:
            pairs = ",".join('%s="%s"' % (key, _escape(labels[key])) for key in sorted(labels))
            lines.append("%s{%s} %s" % (name, pairs, repr(float(values[name])) if isinstance(values[name], float) else values[name]))
    return "\n".join(lines) + "\n"


def write_atomically(path: str, content: str) -> None:
    """Write to a file beside ``path`` and rename it into place, readable by node_exporter."""
    directory = os.path.dirname(path) or "."
    handle, temporary = tempfile.mkstemp(prefix=".difyops-", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(content)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--root", default="/sys/fs/cgroup", help="the cgroup v2 hierarchy")
    parser.add_argument("--cgroup", action="append", dest="cgroups",
                        help="a cgroup to report with everything below it (repeatable); default /dify.slice and /system.slice")
    parser.add_argument("--docker-dir", default="/var/lib/docker/containers", help="Docker's container records")
    parser.add_argument("--kmsg", default="/dev/kmsg", help="the kernel log, for OOM kills")
    parser.add_argument("--output", default="/var/lib/prometheus/node-exporter/difyops_cgroups.prom")
    parser.add_argument("--interval", type=float, default=15.0, help="seconds between two writes")
    parser.add_argument("--once", action="store_true", help="write once and exit")
    return parser.parse_args(argv)


def main(argv: Sequence[str]) -> int:
    args = arguments(argv)
    starts = args.cgroups or ["/dify.slice", "/system.slice"]
    if not unified(args.root) and not os.path.isdir(os.path.join(args.root, "memory")):
        sys.stderr.write("%s has neither cgroup v2 (cgroup.controllers) nor a v1 memory controller\n" % args.root)
        return 1
    oom = OomWatch(args.kmsg)
    while True:
        oom.poll()
        write_atomically(args.output, render(collect(args.root, starts, args.docker_dir, oom)))
        if args.once:
            return 0
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
