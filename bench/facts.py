"""Benchmark of the fact modules (issue 3): gpu_facts and disk_facts against ansible.builtin.setup
with gather_subset hardware, on the same hosts in one ansible-playbook run.

Each source runs --rounds times in a row on every host (bench/facts.yml); bench/callback_plugins/
task_timer.py records when each host finished each task. A task's time is mostly the cost of
running any module at all (connection, transfer, Python start-up), which ansible.builtin.ping
measures on the same host in the same run; a module's own runtime is its task time less ping's.
Reported per host: seconds per call of each source with ping's share taken off, and the ratio
(gpu_facts + disk_facts) / setup-hardware on those runtimes (goal: <= 1); the ratio of whole task
times is shown beside it.

Hosts: this machine (local connection) and, with --podman N, N podman hosts from the test images
(`make images` first), reached with the containers.podman connection.

Run: .venv/bin/python bench/facts.py [--rounds 10] [--podman 2]   (after `make venv`)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from typing import Dict, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGES = ("localhost/difyops-test/debian13:latest", "localhost/difyops-test/debian12:latest")
TASKS = {"Ping": "ping", "Setup hardware": "setup_hardware", "Gpu_facts": "gpu_facts", "Disk_facts": "disk_facts"}


def podman_env() -> Dict[str, str]:
    env = dict(os.environ)
    env["CONTAINERS_CONF"] = os.path.join(ROOT, "tests", "podman", "containers.conf")
    return env


def start_podman_hosts(count: int) -> List[str]:
    names = []
    for index in range(count):
        name = "difyops-bench-facts-%d" % index
        subprocess.run(["podman", "rm", "-f", name], env=podman_env(), capture_output=True, check=False)
        subprocess.run(["podman", "run", "-d", "--name", name, IMAGES[index % len(IMAGES)], "sleep", "infinity"],
                       env=podman_env(), capture_output=True, check=True)
        names.append(name)
    return names


def inventory(podman_hosts: List[str]) -> str:
    hosts = {"localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}
    for name in podman_hosts:
        hosts[name] = {"ansible_connection": "containers.podman.podman", "ansible_python_interpreter": "/usr/bin/python3"}
    return json.dumps({"all": {"hosts": hosts}})


def run(rounds: int, podman_hosts: List[str]) -> List[Dict[str, object]]:
    with tempfile.TemporaryDirectory() as tmp:
        inventory_file = os.path.join(tmp, "inventory.json")
        times_file = os.path.join(tmp, "times.json")
        with open(inventory_file, "w", encoding="utf-8") as handle:
            handle.write(inventory(podman_hosts))
        env = podman_env()
        env.update({
            "ANSIBLE_CONFIG": os.path.join(ROOT, "ansible.cfg"),
            "ANSIBLE_CALLBACK_PLUGINS": os.path.join(ROOT, "bench", "callback_plugins"),
            "ANSIBLE_CALLBACKS_ENABLED": "task_timer",
            "DIFYOPS_TASK_TIMES": times_file,
        })
        subprocess.run(["ansible-playbook", "-i", inventory_file, os.path.join(ROOT, "bench", "facts.yml"),
                        "-e", "bench_rounds=%d" % rounds], env=env, check=True, stdout=subprocess.DEVNULL)
        with open(times_file, encoding="utf-8") as handle:
            return json.load(handle)


def report(times: List[Dict[str, object]], rounds: int) -> int:
    per_host: Dict[str, Dict[str, float]] = {}
    for entry in times:
        key = TASKS.get(str(entry["task"]))
        if key:
            per_host.setdefault(str(entry["host"]), {})[key] = float(entry["seconds"]) / rounds
    header = ("host", "ping (s)", "setup hw (s)", "gpu (s)", "disk (s)", "ratio", "task ratio")
    print("%-24s %9s %13s %9s %9s %7s %11s" % header)
    ratios = []
    for host, row in sorted(per_host.items()):
        net = {key: max(row[key] - row["ping"], 0.0) for key in ("setup_hardware", "gpu_facts", "disk_facts")}
        ratio = (net["gpu_facts"] + net["disk_facts"]) / net["setup_hardware"]
        task_ratio = (row["gpu_facts"] + row["disk_facts"]) / row["setup_hardware"]
        ratios.append(ratio)
        cells = (host, row["ping"], net["setup_hardware"], net["gpu_facts"], net["disk_facts"], ratio, task_ratio)
        print("%-24s %9.3f %13.3f %9.3f %9.3f %7.2f %11.2f" % cells)
    worst = max(ratios)
    print("rounds per source: %d; runtimes less ping's; (gpu_facts + disk_facts) / setup hardware: "
          "median %.2f, worst %.2f (goal <= 1): %s"
          % (rounds, statistics.median(ratios), worst, "met" if worst <= 1 else "NOT met"))
    return 0 if worst <= 1 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--podman", type=int, default=0, help="also run on N podman hosts from the test images")
    args = parser.parse_args()
    hosts = start_podman_hosts(args.podman) if args.podman else []
    try:
        return report(run(args.rounds, hosts), args.rounds)
    finally:
        for name in hosts:
            subprocess.run(["podman", "rm", "-f", "-t", "0", name], env=podman_env(), capture_output=True, check=False)


if __name__ == "__main__":
    sys.exit(main())
