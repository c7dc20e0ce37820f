#!/usr/bin/env bash
# Benchmark of difyops.dify.site on podman fleets of 1, 4 and 8 hosts (issue 8).
#
# For each size N: start N privileged Debian 13 systemd hosts (the test image), prepare them as
# the molecule default scenario does (the distribution's Docker and the stand-in images of
# tools/build-standins.sh, loaded from .cache/standins), then time
#   1. a bare fact-gathering play (gather_facts: true, no tasks) on the N hosts,
#   2. the first converge of difyops.dify.site,
#   3. the idempotent rerun of site (its changed count is checked to be 0),
# all in the same run on the same hosts. Goals: rerun <= 4 x facts; site on 8 hosts <= 2 x site on
# 1 host. Layouts: 1 host = single node; N > 1 = host 1 gateway + app (+ beat), host 2 database,
# Redis and vector store, hosts 3.. app hosts (the default scenario's settings: pgvector, a
# placeholder S3 endpoint for split app hosts; the stack is started, as in that scenario).
#
# Ansible reaches the hosts over SSH with pipelining and ControlPersist (ansible.cfg), as on a real
# fleet: each host gets openssh-server and a key made for the run. (The podman connection cannot
# pipeline, so it costs several `podman` calls per task and would measure podman, not the roles.)
# Every host runs on this machine, so the table also gives the CPU time that the whole machine
# spent during each run (controller and hosts together), and how many CPUs that kept busy.
#
# usage: bench/fleet.sh [SIZES...]     (default: 1 4 8; `make venv images standins` first)
# DIFYOPS_BENCH_KEEP=DIR keeps the last fleet running and writes its inventory and logs to DIR
# (for profiling reruns: ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks ansible-playbook -i
# DIR/inv-N.yml difyops.dify.site); remove the hosts with `podman rm -f` when done.
# Results: a table on stdout and in bench/results/fleet-<date>.md (fleet-<date>-<hhmm>.md when that exists).
set -euo pipefail
source "$(dirname "$0")/../tools/lib.sh"
activate_venv
export ANSIBLE_COLLECTIONS_PATH="$CACHE_DIR/collections" ANSIBLE_FORCE_COLOR=0 ANSIBLE_HOST_KEY_CHECKING=false
# Every run gathers for real: no facts from the repository's fact cache (ansible.cfg).
export ANSIBLE_GATHERING=implicit ANSIBLE_CACHE_PLUGIN=memory
sizes=("$@"); [[ ${#sizes[@]} -gt 0 ]] || sizes=(1 4 8)
image=${DIFYOPS_IMAGE_DEBIAN13:-localhost/difyops-test/debian13:latest}
keep=${DIFYOPS_BENCH_KEEP:-}
if [[ -n "$keep" ]]; then work=$keep; mkdir -p "$work"; else work=$(mktemp -d); trap 'cleanup; rm -rf "$work"' EXIT; fi
net=difyops-bench
mkdir -p "$REPO_ROOT/bench/results"
out="$REPO_ROOT/bench/results/fleet-$(date +%Y%m%d).md"
[[ ! -e "$out" ]] || out="$REPO_ROOT/bench/results/fleet-$(date +%Y%m%d-%H%M).md"  # never overwrite a result

cleanup() { podman ps -a --format '{{.Names}}' | { grep '^difyops-bench-' || true; } | xargs -r podman rm -f -v >/dev/null; }

inventory() {  # N -> YAML inventory on stdout
  local n=$1 i groups
  echo "all:"
  echo "  vars:"
  echo "    ansible_connection: ssh"
  echo "    ansible_user: root"
  echo "    ansible_ssh_private_key_file: $work/id_bench"
  echo "    ansible_ssh_common_args: '-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'"
  echo "    ansible_python_interpreter: /usr/bin/python3"
  # The scenario's group variables, less its air-gapped image loading (the bench loads the stand-ins
  # in prepare, as molecule/shared/standins.yml does by default).
  sed -n '/^        docker_engine_source/,/^    host_vars:/p' "$REPO_ROOT/molecule/default/molecule.yml" | sed '$d' \
    | grep -v -e 'difyops_standins_load:' -e 'dify_stack_image_archives' | sed 's/^    //'
  echo "  children:"
  echo "    dify:"
  echo "      children:"
  for g in gateway app database redis vector_store; do
    echo "        dify_$g:"
    echo "          hosts:"
    for ((i = 1; i <= n; i++)); do
      if (( n == 1 )); then groups="gateway app database redis vector_store"
      elif (( i == 1 )); then groups="gateway app"
      elif (( i == 2 )); then groups="database redis vector_store"
      else groups="app"; fi
      if [[ " $groups " == *" $g "* ]]; then echo "            difyops-bench-$i: {ansible_host: $(address "difyops-bench-$i")}"; fi
    done
  done
}

address() { podman inspect "$1" --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}'; }

busy_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8}' /proc/stat; }  # user nice system irq softirq

# CPU time of the waited-for children of the calling (sub)shell, as `times` wrote it to a file:
# ansible-playbook, its forks and ssh clients; not the hosts' side of the run. (`times` must run
# in that shell itself: in a pipe or $(...) it runs in a fresh subshell and counts nothing.)
children_cpu() { awk 'NR == 2 { n = 0; for (i = 1; i <= 2; i++) { split($i, t, /[ms]/); n += t[1] * 60 + t[2] }; print n }' "$1"; }

timed() {  # label logfile command... -> "wall-seconds machine-cpu-seconds controller-cpu-seconds" on stdout
  local start end ticks0 ticks1; start=$(date +%s.%N); ticks0=$(busy_ticks)
  "${@:3}" > "$2" 2>&1 || { echo "FAILED: $1 (see $2)" >&2; tail -30 "$2" >&2; exit 1; }
  end=$(date +%s.%N); ticks1=$(busy_ticks)
  times > "$2.times"
  echo "$(echo "$end - $start" | bc) $(echo "($ticks1 - $ticks0) / $(getconf CLK_TCK)" | bc -l) $(children_cpu "$2.times")"
}

ssh_ready() {  # name: openssh-server and the run's key on a started host
  podman exec "$1" sh -c 'for _ in $(seq 240); do case $(systemctl is-system-running) in initializing|starting) sleep 0.5;; *) break;; esac; done
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq openssh-server >/dev/null && mkdir -p -m 700 /root/.ssh' \
    && podman cp "$work/id_bench.pub" "$1:/root/.ssh/authorized_keys"
}

printf 'name: bare facts\nhosts: all\ngather_facts: true\ntasks: []\n' | sed '1s/^/- /; 2,$s/^/  /' > "$work/facts.yml"
printf '| hosts | facts play (s) | site, first converge (s) | site, rerun (s) | rerun / facts | site / site on 1 host | machine CPU-s: facts / converge / rerun | controller CPU-s: converge / rerun | CPUs busy in converge |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n' > "$work/table"
[[ -f "$work/id_bench" ]] || ssh-keygen -q -t ed25519 -N '' -C difyops-bench -f "$work/id_bench"
podman network exists "$net" || podman network create "$net" >/dev/null
first=""
for n in "${sizes[@]}"; do
  cleanup
  for ((i = 1; i <= n; i++)); do
    podman run -d --name "difyops-bench-$i" --hostname "difyops-bench-$i" --network "$net" --privileged \
      --systemd=always -v /var/lib/docker -v "$CACHE_DIR/standins:/srv/difyops-standins:ro" "$image" /sbin/init >/dev/null
  done
  log "fleet of $n: openssh-server"
  pids=()
  for ((i = 1; i <= n; i++)); do ssh_ready "difyops-bench-$i" > "$work/ssh-$n-$i.log" 2>&1 & pids+=($!); done
  for pid in "${pids[@]}"; do wait "$pid" || { cat "$work"/ssh-"$n"-*.log; exit 1; }; done
  inventory "$n" > "$work/inv-$n.yml"
  log "fleet of $n: prepare"
  ansible-playbook -i "$work/inv-$n.yml" "$REPO_ROOT/molecule/default/prepare.yml" > "$work/prepare-$n.log" 2>&1 \
    || { tail -30 "$work/prepare-$n.log"; exit 1; }
  log "fleet of $n: facts, site, site again"
  result=$(timed facts "$work/facts-$n.log" ansible-playbook -i "$work/inv-$n.yml" "$work/facts.yml")
  read -r facts facts_cpu _ <<< "$result"
  result=$(timed converge "$work/site-$n.log" ansible-playbook -i "$work/inv-$n.yml" difyops.dify.site)
  read -r converge converge_cpu converge_ctl <<< "$result"
  result=$(timed rerun "$work/rerun-$n.log" ansible-playbook -i "$work/inv-$n.yml" difyops.dify.site)
  read -r rerun rerun_cpu rerun_ctl <<< "$result"
  if grep -E 'changed=[1-9]' "$work/rerun-$n.log"; then echo "the rerun on $n hosts changed something" >&2; exit 1; fi
  [[ -n "$first" ]] || first=$converge
  printf '| %d | %.1f | %.1f | %.1f | %.2f | %.2f | %.1f / %.1f / %.1f | %.1f / %.1f | %.2f of %d |\n' "$n" "$facts" "$converge" "$rerun" \
    "$(echo "$rerun / $facts" | bc -l)" "$(echo "$converge / $first" | bc -l)" \
    "$facts_cpu" "$converge_cpu" "$rerun_cpu" "$converge_ctl" "$rerun_ctl" "$(echo "$converge_cpu / $converge" | bc -l)" "$(nproc)" >> "$work/table"
done
[[ -n "$keep" ]] || cleanup
{ echo "# difyops.dify.site on podman fleets ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs)"; echo; cat "$work/table"; } | tee "$out"
