"""Helper of bench/stack_load.sh: the sized stack against upstream Dify 1.13.3's defaults under load.

Three commands; the first two run ON THE TEST HOST (python3, standard library only), the last on the
controller:

  stock PROJECT DIR        write DIR/compose.stock.yaml and DIR/nginx.conf: the Compose override that
                           turns the deployed (sized) project into upstream's defaults (see STOCK_ENV and
                           RESET_KEYS), and the gateway's nginx.conf without limit_req and without kept-alive
                           upstream connections (upstream's nginx proxies straight to http://api:5001).
  measure PROJECT -- CMD   run CMD (load_probe.py with one phase) and print {"probe": CMD's JSON, "memory":
                           {service: {"peak_mb", "limit_mb", "how"}}}: each container's peak memory during CMD
                           (cgroup v1: memory.max_usage_in_bytes reset before CMD; v2: memory.current sampled
                           every 0.2 s) and its limit (None: unlimited).
  report JSONL OUT.md      the results page from the JSON lines bench/stack_load.sh collected.

Run: bench/stack_load.sh (it copies this file onto the host); --help there.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import threading

CGROUP_ROOT = "/sys/fs/cgroup"
UNLIMITED = 1 << 60

# Upstream Dify 1.13.3's defaults, docker/.env.example (shared/reference/upstream-raw/1.13.3/docker/ here):
#   161 SERVER_WORKER_AMOUNT=1, 173 SERVER_WORKER_CONNECTIONS=10, 190 CELERY_WORKER_AMOUNT= (empty: one process),
#   250 SQLALCHEMY_POOL_SIZE=30, 252 SQLALCHEMY_MAX_OVERFLOW=10; CELERY_WORKER_CLASS= (empty) at 183.
# docker-compose.yaml gives all of them to api, worker and worker_beat alike (the x-shared-env anchor, line 7,
# keys at lines 44-66); an empty CELERY_WORKER_AMOUNT reaches the container as "" (${CELERY_WORKER_AMOUNT:-}).
STOCK_ENV = {
    "api": {"SERVER_WORKER_AMOUNT": "1", "SERVER_WORKER_CONNECTIONS": "10",
            "SQLALCHEMY_POOL_SIZE": "30", "SQLALCHEMY_MAX_OVERFLOW": "10"},
    "worker": {"CELERY_WORKER_AMOUNT": "", "CELERY_WORKER_CLASS": "",
               "SQLALCHEMY_POOL_SIZE": "30", "SQLALCHEMY_MAX_OVERFLOW": "10"},
    "worker_beat": {"SQLALCHEMY_POOL_SIZE": "30", "SQLALCHEMY_MAX_OVERFLOW": "10"},
}
# Upstream's docker-compose.yaml sets no memory or CPU limit, share or reservation on any service (and no
# shm_size): every resource key the plan writes is dropped with Compose's !reset (Compose >= 2.24.4).
RESET_KEYS = ("deploy", "mem_limit", "memswap_limit", "mem_reservation", "cpus", "cpu_shares", "cpu_quota",
              "cpu_period", "cpuset", "shm_size")
NGINX_TARGET = "/etc/nginx/nginx.conf"
REQUEST_PATH = ("nginx", "api", "web", "sandbox", "plugin_daemon", "db_postgres", "pgvector", "redis")
MEMORY_SERVICES = ("api", "worker", "sandbox")


def compose_json(project):
    return json.loads(subprocess.run(["docker", "compose", "--project-directory", project, "config", "--format", "json"],
                                     capture_output=True, text=True, check=True).stdout)


def stock_override(config, directory):
    """The override's YAML text (written by hand: JSON cannot carry the !reset tag)."""
    lines = ["# Upstream Dify 1.13.3's defaults over the sized project (bench/stack_load/stack_load.py stock).",
             "services:"]
    for name, service in sorted(config["services"].items()):
        lines.append("  %s:" % name)
        for key in RESET_KEYS:
            if key in service:
                lines.append("    %s: !reset null" % key)
        environment = STOCK_ENV.get(name)
        if environment:
            lines.append("    environment:")
            for key, value in sorted(environment.items()):
                lines.append("      %s: %s" % (key, json.dumps(value)))
        if name == "nginx":
            lines.append("    volumes:")
            lines.append("      - %s:%s:ro" % (os.path.join(directory, "nginx.conf"), NGINX_TARGET))
        if lines[-1] == "  %s:" % name:
            lines.pop()
    return "\n".join(lines) + "\n"


def stock_nginx(text):
    """The plan's gateway less what upstream's nginx does not have: limit_req (and its zone and status) and the
    upstream blocks' kept-alive connections (`keepalive N;`; keepalive_timeout stays, 65 s as upstream)."""
    kept = [line for line in text.splitlines()
            if not re.match(r"^\s*(limit_req\S*|limit_conn_status|keepalive\s+\d+;)", line)]
    return "\n".join(kept) + "\n"


def stock(project, directory):
    config = compose_json(project)
    if "nginx" not in config["services"]:
        raise SystemExit("no nginx service in %s" % project)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(project, "nginx", "nginx.conf")) as handle:
        nginx = stock_nginx(handle.read())
    if "limit_req" in nginx:
        raise SystemExit("limit_req is still in the stock nginx.conf")
    with open(os.path.join(directory, "nginx.conf"), "w") as handle:
        handle.write(nginx)
    with open(os.path.join(directory, "compose.stock.yaml"), "w") as handle:
        handle.write(stock_override(config, directory))
    print(os.path.join(directory, "compose.stock.yaml"))
    return 0


def containers(project):
    ids = subprocess.run(["docker", "compose", "--project-directory", project, "ps", "--quiet"],
                         capture_output=True, text=True, check=True).stdout.split()
    inspected = json.loads(subprocess.run(["docker", "inspect"] + ids, capture_output=True, text=True, check=True).stdout)
    return {item["Name"].lstrip("/"): item["Id"] for item in inspected}


def service_of(name):
    match = re.match(r"^[^-]+-(.+)-\d+$", name)
    return match.group(1) if match else name


def memory_dir(cid, version):
    base = CGROUP_ROOT if version == "v2" else os.path.join(CGROUP_ROOT, "memory")
    wanted = "memory.current" if version == "v2" else "memory.usage_in_bytes"
    for directory, subdirectories, _files in os.walk(base):
        for name in subdirectories:
            if cid in name and os.path.exists(os.path.join(directory, name, wanted)):
                return os.path.join(directory, name)
    return None


def read_int(path):
    with open(path) as handle:
        raw = handle.read().strip()
    return UNLIMITED if raw == "max" else int(raw)


class Sampler(threading.Thread):
    """memory.current of each cgroup every 0.2 s (cgroup v2, where the peak cannot be reset per phase)."""

    def __init__(self, paths):
        super().__init__(daemon=True)
        self.paths, self.peaks, self.done = paths, dict.fromkeys(paths, 0), threading.Event()

    def run(self):
        while not self.done.is_set():
            for name, path in self.paths.items():
                try:
                    self.peaks[name] = max(self.peaks[name], read_int(os.path.join(path, "memory.current")))
                except OSError:
                    pass
            self.done.wait(0.2)


def measure(project, command):
    version = "v2" if os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers")) else "v1"
    paths = {}
    for name, cid in containers(project).items():
        path = memory_dir(cid, version)
        if path is not None:
            paths[name] = path
    how = "sampled memory.current, 0.2 s"
    sampler = None
    if version == "v1":
        how = "memory.max_usage_in_bytes, reset before the phase"
        for path in paths.values():
            try:
                with open(os.path.join(path, "memory.max_usage_in_bytes"), "w") as handle:
                    handle.write("0")
            except OSError:
                how = "memory.max_usage_in_bytes since the container started (reset refused)"
    else:
        sampler = Sampler(paths)
        sampler.start()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if sampler is not None:
        sampler.done.set()
        sampler.join()
    memory = {}
    for name, path in paths.items():
        if version == "v1":
            peak = read_int(os.path.join(path, "memory.max_usage_in_bytes"))
            limit = read_int(os.path.join(path, "memory.limit_in_bytes"))
        else:
            peak = sampler.peaks[name]
            limit = read_int(os.path.join(path, "memory.max"))
        service = memory.setdefault(service_of(name), {"peak_mb": 0.0, "limit_mb": 0.0, "how": how})
        service["peak_mb"] = round(service["peak_mb"] + peak / 1048576.0, 1)
        service["limit_mb"] = None if limit >= UNLIMITED // 2 or service["limit_mb"] is None \
            else round(service["limit_mb"] + limit / 1048576.0, 1)
    try:
        probe = json.loads(done.stdout)
    except ValueError:
        probe = {"error": "probe exit %d: %s %s" % (done.returncode, done.stdout[-2000:], done.stderr[-2000:])}
    print(json.dumps({"probe": probe, "memory": memory, "cgroup": version}))
    return 0 if done.returncode == 0 else 1


def number(value, digits=2):
    return "–" if value is None else ("%.*f" % (digits, value))


def throttled(services):
    """The largest throttled share (of scheduler periods) on the request path, with its service."""
    worst = max(((item.get("throttled_pct", 0.0), name) for name, item in services.items() if name in REQUEST_PATH),
                default=(0.0, "–"))
    return "%.1f %% (%s)" % worst if worst[0] > 0 else "0 %"


def memory_cell(memory, name):
    item = memory.get(name)
    if not item:
        return "–"
    limit = item["limit_mb"]
    return "%.0f / %s" % (item["peak_mb"], "none" if limit is None else "%.0f" % limit)


def per_cpu(phase):
    """Runs served per CPU second the stack's containers used: what the plan does with the CPU it gets."""
    return phase["rps"] / phase["stack_cpus"] if phase["stack_cpus"] else None


def pooled_per_cpu(phases):
    cpu = sum(item["stack_cpus"] * item["seconds"] for item in phases)
    return sum(item["rps"] * item["seconds"] for item in phases) / cpu if cpu else 0.0


def rows(records):
    for record in records:
        for phase in record["probe"].get("phases", []):
            yield record, phase


def report(jsonl, out):
    with open(jsonl) as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    meta = [record for record in records if record.get("kind") == "meta"]
    records = [record for record in records if record.get("kind") == "phase"]
    lines = []
    info = meta[0] if meta else {}
    lines.append("| clients | plan | round | served r/s | p50 s | p99 s | statuses | pool timeouts | host busy | "
                 "stack CPUs | r/s per stack CPU | most throttled (request path) | peak MiB / limit: api | worker | sandbox |")
    lines.append("|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---:|---:|---:|")
    by_key = {}
    for record, phase in sorted(rows(records), key=lambda item: (item[1]["clients"], item[0]["plan"] != "sized",
                                                                 item[0]["round"])):
        status = ", ".join("%s × %s" % (count, code) for code, count in sorted(phase["status"].items()))
        lines.append("| %d | %s | %d | %.2f | %s | %s | %s | %d | %s | %s | %s | %s | %s | %s | %s |" % (
            phase["clients"], record["plan"], record["round"], phase["rps"], number(phase["p50_s"]),
            number(phase["p99_s"]), status, phase["pool_timeouts"], number(phase["host_busy"]),
            number(phase["stack_cpus"]), number(per_cpu(phase)), throttled(phase["services"]),
            memory_cell(record["memory"], "api"),
            memory_cell(record["memory"], "worker"), memory_cell(record["memory"], "sandbox")))
        by_key.setdefault((phase["clients"], record["plan"]), []).append(phase)
    summary = ["| clients | sized r/s (rounds) | stock r/s (rounds) | sized / stock | worst p99 s: sized / stock | "
               "stack CPUs: sized / stock | r/s per stack CPU: sized / stock | non-200: sized / stock | "
               "sized at least as fast in every round |",
               "|---:|---|---|---:|---|---|---|---|---|"]
    verdicts, slower = [], []
    for clients in sorted({key[0] for key in by_key}):
        sized, stock_runs = by_key.get((clients, "sized"), []), by_key.get((clients, "stock"), [])
        if not sized or not stock_runs:
            continue
        sized_rps, stock_rps = [item["rps"] for item in sized], [item["rps"] for item in stock_runs]

        def bad(items):
            return sum(count for item in items for code, count in item["status"].items() if code != "200")

        # Round by round: round n of sized against round n of stock.
        every = all(a["rps"] >= b["rps"] for a, b in zip(sized, stock_runs))
        for index, (a, b) in enumerate(zip(sized, stock_runs), start=1):
            if a["rps"] < b["rps"]:
                slower.append("- %d clients, round %d: sized %.2f r/s on %.2f stack CPUs, stock %.2f r/s on %.2f; "
                              "r/s per stack CPU %s / %s; most throttled %s / %s; pool timeouts %d / %d; 429s %d / %d."
                              % (clients, index, a["rps"], a["stack_cpus"], b["rps"], b["stack_cpus"],
                                 number(per_cpu(a)), number(per_cpu(b)), throttled(a["services"]),
                                 throttled(b["services"]), a["pool_timeouts"], b["pool_timeouts"],
                                 a["status"].get("429", 0), b["status"].get("429", 0)))
        verdicts.append(every)
        summary.append("| %d | %.2f (%s) | %.2f (%s) | %.2f | %s / %s | %.2f / %.2f | %.2f / %.2f | %d / %d | %s |" % (
            clients, statistics.mean(sized_rps), ", ".join("%.2f" % value for value in sized_rps),
            statistics.mean(stock_rps), ", ".join("%.2f" % value for value in stock_rps),
            statistics.mean(sized_rps) / statistics.mean(stock_rps) if statistics.mean(stock_rps) else float("inf"),
            number(max(item["p99_s"] or 0 for item in sized)), number(max(item["p99_s"] or 0 for item in stock_runs)),
            statistics.mean(item["stack_cpus"] for item in sized), statistics.mean(item["stack_cpus"] for item in stock_runs),
            pooled_per_cpu(sized), pooled_per_cpu(stock_runs), bad(sized), bad(stock_runs), "yes" if every else "**no**"))
    order = " → ".join(info.get("order", []))
    seconds = ", ".join(info.get("seconds", "?").split())
    text = ["# The sized stack against upstream's defaults under load, %s (issue 19)" % info.get("date", "?"), "",
            "Reproduce: `%s` (wall time of this run: %s s, on %s CPUs and %s MiB; load average before: %s)." % (
                info.get("command", "bench/stack_load.sh"), info.get("wall_s", "?"), info.get("cpus", "?"),
                info.get("memory_mb", "?"), info.get("loadavg", "?")),
            "",
            "Single node (`molecule/stack`, difyops-stack1), the same images and host for both plans, alternated "
            "%s; each phase: `load_probe.py` with CLIENTS blocking workflow runs at once through the gateway for "
            "%s s (in turn), each burning %s ms of CPU in the sandbox; a warm-up phase (5 clients, 5 s, discarded) after "
            "each switch." % (order, seconds, info.get("cpu_ms", "?")),
            "",
            "- **sized**: the project `difyops.dify.site` deployed from the plan (`/opt/dify/compose.yaml`).",
            "- **stock**: the same project with `bench/stack_load/stack_load.py stock`'s override: upstream "
            "Dify 1.13.3's api/worker settings (SERVER_WORKER_AMOUNT=1, SERVER_WORKER_CONNECTIONS=10, "
            "SQLALCHEMY_POOL_SIZE=30, SQLALCHEMY_MAX_OVERFLOW=10, CELERY_WORKER_AMOUNT empty; `.env.example` lines "
            "161, 173, 190, 250, 252), no memory or CPU limit, share or reservation on any service (`!reset`), and "
            "the gateway without `limit_req` and without kept-alive upstream connections, as upstream's nginx.",
            "",
            "## Sized against stock, per concurrency", ""]
    text += summary
    text += ["", "Where sized served fewer runs than stock in the same round (sized / stock):", ""]
    text += slower or ["- nowhere"]
    how = records[0]["memory"].get("api", {}).get("how", "?") if records else "?"
    most = "%.0f" % (1000.0 / info["cpu_ms"]) if info.get("cpu_ms") else "?"
    text += ["", "## Every phase", "",
             "Peak memory: %s, in MiB (page cache included), with the container's limit (none: unlimited). "
             "Stack CPUs: CPU seconds of all the stack's containers per second; host busy: the share of the "
             "machine's CPU time not idle (everything on it, not only the stack); r/s per stack CPU: runs served per "
             "CPU second the stack used (each run burns at least %s ms in the sandbox, so at most %s)."
             % (how, info.get("cpu_ms", "?"), most), ""]
    text += lines + [""]
    with open(out, "w") as handle:
        handle.write("\n".join(text))
    print("\n".join(summary))
    return 0 if verdicts and all(verdicts) else 3


def main(argv):
    if len(argv) >= 4 and argv[1] == "stock":
        return stock(argv[2], argv[3])
    if len(argv) >= 5 and argv[1] == "measure" and argv[3] == "--":
        return measure(argv[2], argv[4:])
    if len(argv) == 4 and argv[1] == "report":
        return report(argv[2], argv[3])
    sys.stderr.write(__doc__ or "")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
