# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The monitoring role's cgroup collector (roles/monitoring/files/difyops_cgroup_metrics.py) on
cgroup trees laid out as the kernel lays them out (v2 and the legacy v1), with Docker's records:
the metric names and labels the alert rules select on, and values read from the right files."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "roles" / "monitoring" / "files" / "difyops_cgroup_metrics.py"
CONTAINER = "a" * 64
MIB = 1024 * 1024


def write(path: Path, files: Dict[str, str]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (path / name).write_text(text, encoding="ascii")


def docker_record(docker: Path) -> None:
    labels = {"com.docker.compose.project": "dify", "com.docker.compose.service": "api", "other": "x"}
    record = {"Name": "/dify-api-1", "Config": {"Labels": labels}}
    write(docker / CONTAINER, {"config.v2.json": json.dumps(record)})


def v2_tree(root: Path) -> None:
    write(root, {"cgroup.controllers": "cpu memory\n"})
    write(root / "dify.slice", {"memory.current": "%d\n" % (900 * MIB), "memory.max": "max\n",
                                "memory.stat": "anon 1\ninactive_file %d\nactive_file 5\n" % (100 * MIB),
                                "memory.events": "low 0\nhigh 3\nmax 9\noom 2\noom_kill 2\n", "cpu.stat": "usage_usec 2500000\n"})
    write(root / "dify.slice" / ("docker-%s.scope" % CONTAINER),
          {"memory.current": "%d\n" % (300 * MIB), "memory.max": "%d\n" % (512 * MIB),
           "memory.stat": "inactive_file %d\n" % (50 * MIB), "memory.events": "oom_kill 1\n", "cpu.stat": "usage_usec 1000\n"})
    write(root / "system.slice" / "nginx.service", {"memory.current": "%d\n" % (20 * MIB), "memory.max": "max\n",
                                                    "memory.stat": "inactive_file 0\n", "memory.events": "oom_kill 0\n"})
    # A cgroup without the memory controller (no memory.current) is left out.
    write(root / "system.slice" / "bare.service", {"cgroup.procs": ""})


def v1_tree(root: Path) -> None:
    unlimited = "9223372036854771712\n"
    write(root / "memory" / "system.slice" / "system-postgresql.slice" / "postgresql@15-main.service",
          {"memory.usage_in_bytes": "%d\n" % (400 * MIB), "memory.limit_in_bytes": unlimited,
           "memory.stat": "cache 5\ninactive_file 7\ntotal_inactive_file %d\n" % (40 * MIB),
           "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 4\n"})
    write(root / "memory" / "system.slice", {"memory.usage_in_bytes": "%d\n" % (600 * MIB), "memory.limit_in_bytes": unlimited,
                                             "memory.stat": "total_inactive_file 0\n", "memory.oom_control": "oom_kill 0\n"})
    write(root / "cpuacct" / "system.slice" / "system-postgresql.slice" / "postgresql@15-main.service",
          {"cpuacct.usage": "3000000000\n"})


def run(root: Path, tmp_path: Path, *cgroups: str) -> str:
    out = tmp_path / "textfile" / "difyops_cgroups.prom"
    out.parent.mkdir(exist_ok=True)
    argv = [sys.executable, str(SCRIPT), "--once", "--root", str(root), "--docker-dir", str(tmp_path / "docker"),
            "--output", str(out)]
    for cgroup in cgroups:
        argv += ["--cgroup", cgroup]
    subprocess.run(argv, check=True, timeout=60)
    assert [p.name for p in out.parent.iterdir()] == [out.name], "no temporary file may be left behind"
    assert out.stat().st_mode & 0o777 == 0o644
    return out.read_text(encoding="utf-8")


def samples(text: str) -> Dict[str, float]:
    """Every sample line, keyed by metric name and labels as written."""
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(\S+\{.*\}) (\S+)$", text, re.M)}


def test_cgroup_v2_gives_cadvisors_names_and_the_compose_labels(tmp_path):
    root = tmp_path / "cgroup"
    v2_tree(root)
    docker_record(tmp_path / "docker")
    found = samples(run(root, tmp_path))
    api = ('{container_label_com_docker_compose_project="dify",container_label_com_docker_compose_service="api",'
           'id="/dify.slice/docker-%s.scope",name="dify-api-1"}' % CONTAINER)
    assert found["container_memory_working_set_bytes" + api] == 250 * MIB
    assert found["container_memory_usage_bytes" + api] == 300 * MIB
    assert found["container_spec_memory_limit_bytes" + api] == 512 * MIB
    assert found["container_oom_events_total" + api] == 1
    assert found['container_memory_working_set_bytes{id="/dify.slice"}'] == 800 * MIB
    assert found['container_spec_memory_limit_bytes{id="/dify.slice"}'] == 0
    assert found['container_oom_events_total{id="/dify.slice"}'] == 2
    assert found['container_cpu_usage_seconds_total{id="/dify.slice"}'] == 2.5
    assert found['container_memory_working_set_bytes{id="/system.slice/nginx.service"}'] == 20 * MIB
    assert not any("bare.service" in key for key in found)
    assert not any("other" in key for key in found), "only the Compose labels are exported"


def test_the_legacy_hierarchy_is_read_from_its_controllers(tmp_path):
    root = tmp_path / "cgroup"
    v1_tree(root)
    found = samples(run(root, tmp_path, "/system.slice"))
    unit = '{id="/system.slice/system-postgresql.slice/postgresql@15-main.service"}'
    assert found["container_memory_working_set_bytes" + unit] == 360 * MIB
    assert found["container_spec_memory_limit_bytes" + unit] == 0
    assert found["container_oom_events_total" + unit] == 4
    assert found["container_cpu_usage_seconds_total" + unit] == 3.0
    assert found['container_memory_usage_bytes{id="/system.slice"}'] == 600 * MIB
    # The rules' regular expression for a split fleet's PostgreSQL unit matches what is written.
    assert re.fullmatch("/system.slice/system-postgresql.slice/postgresql@.+[.]service",
                        "/system.slice/system-postgresql.slice/postgresql@15-main.service")


def test_a_root_without_cgroups_is_refused(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--once", "--root", str(tmp_path), "--output", str(tmp_path / "x.prom")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1 and "neither cgroup v2" in done.stderr
    assert not (tmp_path / "x.prom").exists()


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian's prometheus package, installed by .ci/run) is absent")
def test_promtool_accepts_the_exposition(tmp_path):
    root = tmp_path / "cgroup"
    v2_tree(root)
    docker_record(tmp_path / "docker")
    text = run(root, tmp_path)
    done = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_oom_kills_in_the_kernel_log_count_for_the_killed_tasks_cgroup(tmp_path):
    # A container killed at its limit is restarted by Docker in a new cgroup whose counter is zero:
    # only the kernel's log still tells. The collector reads it from its end, as on /dev/kmsg.
    root = tmp_path / "cgroup"
    v2_tree(root)
    docker_record(tmp_path / "docker")
    kmsg = tmp_path / "kmsg"
    kmsg.write_text("6,1,1,-;an older kill: oom-kill:constraint=CONSTRAINT_MEMCG,task_memcg=/dify.slice/docker-%s.scope,task=x\n" % CONTAINER,
                    encoding="ascii")
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import difyops_cgroup_metrics as collector  # pylint: disable=import-outside-toplevel
    finally:
        sys.path.pop(0)
    watch = collector.OomWatch(str(kmsg))
    (root / "dify.slice" / ("docker-%s.scope" % CONTAINER) / "memory.events").write_text("oom_kill 0\n", encoding="ascii")
    with open(kmsg, "a", encoding="ascii") as log:
        for _kill in range(2):
            log.write("3,9,9,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),oom_memcg=/libpod_parent/libpod-1/dify.slice/"
                      "docker-%s.scope,task_memcg=/libpod_parent/libpod-1/dify.slice/docker-%s.scope,task=python3,pid=7\n"
                      % (CONTAINER, CONTAINER))
        log.write("6,10,10,-;Memory cgroup out of memory: Killed process 7 (python3)\n")
    watch.poll()
    found = {labels["id"]: values["container_oom_events_total"]
             for labels, values in collector.collect(str(root), ["/dify.slice", "/system.slice"], str(tmp_path / "docker"), watch)}
    assert found["/dify.slice/docker-%s.scope" % CONTAINER] == 2, "the kills before the collector started are not counted"
    assert found["/dify.slice"] == 2, "the slice's own counter (memory.events) stays where it is higher"
    assert found["/system.slice/nginx.service"] == 0
    assert collector.OomWatch(str(tmp_path / "absent")).kills("/dify.slice") == 0
