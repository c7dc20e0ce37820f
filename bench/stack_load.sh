#!/usr/bin/env bash
# Benchmark of the sized stack against upstream Dify 1.13.3's defaults under load (issue 19: "the sized
# stack at least as fast as upstream's defaults on the same host, at every concurrency from 5 to 100,
# with memory bounded").
#
# 1. Brings up the `stack` molecule scenario's host (difyops-stack1) and converges it with
#    difyops.dify.site: the sized stack, running the contract stand-ins of tests/standins (the api
#    stand-in serves SERVER_WORKER_AMOUNT x SERVER_WORKER_CONNECTIONS connections with a SQLAlchemy pool
#    per process; the sandbox burns real CPU).
# 2. Writes, on the host, the "stock" variant of the same project (bench/stack_load/stack_load.py stock):
#    a Compose override with upstream's api/worker settings from Dify 1.13.3's .env.example, no memory or
#    CPU limit, share or reservation (`!reset`), and the gateway's nginx.conf without limit_req and
#    without kept-alive upstream connections (upstream's nginx has neither).
# 3. Alternates the plans (sized, stock, sized, stock by default) with `docker compose up -d --wait`,
#    the same images and host; after each switch a discarded warm-up phase, then every phase with
#    molecule/stack/files/load_probe.py (blocking workflow runs through the gateway, CPU_MS of CPU each
#    in the sandbox), one probe per phase so that bench/stack_load/stack_load.py measure gives each
#    phase its own peak memory of every container.
# 4. Restores the sized stack (compose.yaml alone) and destroys the scenario.
#
# usage: bench/stack_load.sh [--phases "5:20 20:20 50:20 100:20"] [--cpu-ms 100] [--rounds 2] [--keep]
#   --phases  CLIENTS:SECONDS of each phase, in order          --rounds  sized+stock pairs to run
#   --cpu-ms  CPU time each workflow run burns in the sandbox   --keep    leave the host up (sized) at the end
# Needs `make venv images standins` first (the test image and .cache/standins/standins.tar), and owns the
# `stack` scenario while it runs (do not run that scenario at the same time).
# Results: a table on stdout and bench/results/stack-load-<date>.md (stack-load-<date>-<hhmm>.md when that
# exists; never overwritten), with the raw JSON lines next to it (.jsonl). Exit status 3: the sized stack
# was slower than stock at some concurrency in some round (the page lists where, with the stack's CPUs,
# throttling, pool timeouts and 429s of both). The page has the figures only: add the reading by hand.
set -euo pipefail
source "$(dirname "$0")/../tools/lib.sh"

phases="5:20 20:20 50:20 100:20"
cpu_ms=100
rounds=2
keep=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --phases) phases=$2; shift 2 ;;
    --cpu-ms) cpu_ms=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (--help)" ;;
  esac
done
[[ $rounds =~ ^[1-9][0-9]*$ && $cpu_ms =~ ^[0-9]+$ ]] || die "--rounds and --cpu-ms take positive integers"
for spec in $phases; do [[ $spec =~ ^[0-9]+:[0-9.]+$ ]] || die "phase '$spec' is not CLIENTS:SECONDS"; done
command_line="bench/stack_load.sh --phases \"$phases\" --cpu-ms $cpu_ms --rounds $rounds"

activate_venv
export ANSIBLE_COLLECTIONS_PATH="$CACHE_DIR/collections" ANSIBLE_FORCE_COLOR=0 PY_COLORS=0
[[ -f "$CACHE_DIR/standins/standins.tar" ]] || die "no $CACHE_DIR/standins/standins.tar: run tools/build-standins.sh first"

host=difyops-stack1
project=/opt/dify
remote=/root/difyops-bench-stack-load
work=$(mktemp -d)
mkdir -p "$REPO_ROOT/bench/results"
out="$REPO_ROOT/bench/results/stack-load-$(date +%Y%m%d).md"
[[ ! -e "$out" ]] || out="$REPO_ROOT/bench/results/stack-load-$(date +%Y%m%d-%H%M).md"  # never overwrite a result
[[ ! -e "$out" ]] || die "$out exists"
jsonl="${out%.md}.jsonl"
started=$(date +%s)
loadavg=$(cut -d' ' -f1-3 /proc/loadavg)

# shellcheck disable=SC2317  # run by the EXIT trap
finish() {
  local status=$?
  if [[ -z "$keep" ]]; then
    log "molecule destroy -s stack"
    (cd "$REPO_ROOT" && molecule destroy -s stack) > "$work/destroy.log" 2>&1 || tail -20 "$work/destroy.log" >&2
  fi
  if [[ $status -ne 0 && $status -ne 3 ]]; then log "logs kept in $work"; else rm -rf "$work"; fi
}
trap finish EXIT

on_host() { podman exec "$host" "$@"; }

molecule_step() {  # step: molecule STEP -s stack, its log in $work
  log "molecule $1 -s stack"
  (cd "$REPO_ROOT" && molecule "$1" -s stack) > "$work/$1.log" 2>&1 || { tail -40 "$work/$1.log" >&2; die "molecule $1 failed (log: $work/$1.log)"; }
}

switch() {  # plan: sized | stock
  local files=(-f "$project/compose.yaml")
  [[ $1 == sized ]] || files+=(-f "$remote/stock/compose.stock.yaml")
  log "switching to the $1 stack"
  on_host docker compose --project-directory "$project" "${files[@]}" up -d --wait --wait-timeout 300 \
    > "$work/switch.log" 2>&1 || { cat "$work/switch.log" >&2; die "docker compose up ($1) failed"; }
}

probe() {  # plan round spec -> one JSON line on stdout (measure's, with plan and round)
  on_host python3 "$remote/stack_load.py" measure "$project" -- \
    python3 "$remote/load_probe.py" http://127.0.0.1:80 "$project" "$cpu_ms" "$3" \
    | python3 -c 'import json, sys; r = json.load(sys.stdin); r.update(kind="phase", plan=sys.argv[1], round=int(sys.argv[2])); print(json.dumps(r))' "$1" "$2"
}

molecule_step create
molecule_step prepare
molecule_step converge
on_host mkdir -p "$remote"
podman cp "$REPO_ROOT/bench/stack_load/stack_load.py" "$host:$remote/stack_load.py"
podman cp "$REPO_ROOT/molecule/stack/files/load_probe.py" "$host:$remote/load_probe.py"
on_host docker compose --project-directory "$project" -f "$project/compose.yaml" config --quiet
on_host python3 "$remote/stack_load.py" stock "$project" "$remote/stock" >/dev/null
on_host docker compose --project-directory "$project" -f "$project/compose.yaml" -f "$remote/stock/compose.stock.yaml" \
  config > "$work/stock-config.yaml"
on_host cat "$remote/stock/compose.stock.yaml" > "$work/compose.stock.yaml"

order=()
: > "$jsonl"
for ((round = 1; round <= rounds; round++)); do
  for plan in sized stock; do
    order+=("$plan")
    switch "$plan"
    probe "$plan" "$round" "5:5" > /dev/null  # warm-up, discarded
    for spec in $phases; do
      log "round $round, $plan: $spec (clients:seconds)"
      line=$(probe "$plan" "$round" "$spec") || { echo "$line" >&2; die "the probe failed"; }
      echo "$line" >> "$jsonl"
      python3 -c 'import json, sys; r = json.loads(sys.argv[1]); p = r["probe"]["phases"][0]
print("    %s r/s, p50 %s s, p99 %s s, %s, pool timeouts %s, host busy %s, stack %s CPUs" % (p["rps"], p["p50_s"], p["p99_s"], p["status"], p["pool_timeouts"], p["host_busy"], p["stack_cpus"]))' "$line" >&2
    done
  done
done
switch sized
on_host rm -rf "$remote"
[[ -n "$keep" ]] || molecule_step destroy
keep=1  # destroyed already

META_DATE=$(date -u +%Y-%m-%dT%H:%MZ) META_COMMAND=$command_line META_WALL=$(( $(date +%s) - started )) \
  META_LOADAVG=$loadavg META_ORDER="${order[*]}" META_PHASES=$phases META_CPU_MS=$cpu_ms python3 -c '
import json, os, sys
env = os.environ
meta = {"kind": "meta", "date": env["META_DATE"], "command": env["META_COMMAND"], "wall_s": int(env["META_WALL"]),
        "cpus": os.cpu_count(), "memory_mb": os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 1048576,
        "loadavg": env["META_LOADAVG"], "order": env["META_ORDER"].split(),
        "seconds": " ".join(spec.split(":")[1] for spec in env["META_PHASES"].split()), "cpu_ms": int(env["META_CPU_MS"])}
with open(sys.argv[1]) as handle:
    lines = handle.read().splitlines()
with open(sys.argv[1], "w") as handle:
    handle.write("\n".join([json.dumps(meta)] + lines) + "\n")
' "$jsonl"
status=0
python3 "$REPO_ROOT/bench/stack_load/stack_load.py" report "$jsonl" "$out" || status=$?
[[ $status -eq 0 || $status -eq 3 ]] || die "the report failed"
log "results: $out ($(( $(date +%s) - started )) s)"
exit "$status"
