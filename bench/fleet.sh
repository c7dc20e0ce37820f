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
# 1 host (issue 8). For the rerun (a converged fleet, its stack running) it also reports, per host
# (issue 22): the round trips, i.e. the ssh invocations that ran something on the host (ssh, sftp
# and scp go through a wrapper that logs each one's host and task, then execs the real program;
# a ping of the fleet checks that one module call is one logged call), the top 10 tasks by round
# trips, and the controller CPU-s divided by N. Goals: <= 20 round trips per host; controller
# CPU-s per host at 8 hosts within 10 % of 1 host. Layouts: 1 host = single node; N > 1 = host 1
# gateway + app (+ beat), host 2 database, Redis and vector store, hosts 3.. app hosts (the
# default scenario's settings: pgvector, a placeholder S3 endpoint for split app hosts; the stack
# is started, as in that scenario, and every host's containers are counted running after the
# rerun). The keeper of the secrets is the single node or host 2 (the scenario's difyops-data1 is
# not in this fleet).
#
# Ansible reaches the hosts over SSH with pipelining and ControlPersist (ansible.cfg), as on a real
# fleet: each host gets openssh-server and a key made for the run. (The podman connection pipelines
# too, with `[connection] pipelining`, but each call is a `podman exec`: it would measure podman.)
# Every host runs on this machine, so the table also gives the CPU time that the whole machine
# spent during each run (controller and hosts together), and how many CPUs that kept busy.
#
# usage: bench/fleet.sh [SIZES...]     (default: 1 4 8; `make venv images standins` first)
# DIFYOPS_BENCH_KEEP=DIR keeps the last fleet running and writes its inventory and logs to DIR
# (for profiling reruns: ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks ansible-playbook -i
# DIR/inv-N.yml difyops.dify.site); remove the hosts with `podman rm -f` when done.
# DIFYOPS_BENCH_REF=REF (a commit, e.g. HEAD) measures the collection as committed at REF, exported
# into the work directory, instead of the working tree, which others may be editing during the run.
# Results: a table on stdout and in bench/results/fleet-<date>.md (fleet-<date>-<hhmm>.md when that
# exists), with every round trip of the reruns (size, host, program, task) beside it in
# <that name>-round-trips.tsv.
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
# The collection under test (and the scenario's files): the working tree, or REF exported.
ref=${DIFYOPS_BENCH_REF:-}
src=$REPO_ROOT
if [[ -n "$ref" ]]; then
  commit=$(git -C "$REPO_ROOT" rev-parse --verify "$ref^{commit}")
  src=$work/src; rm -rf "$src" "$work/collections"; mkdir -p "$src" "$work/collections/ansible_collections/difyops"
  git -C "$REPO_ROOT" archive "$commit" | tar -x -C "$src"
  ln -s "$src" "$work/collections/ansible_collections/difyops/dify"
  export ANSIBLE_COLLECTIONS_PATH="$work/collections"
  measured="the collection at ${commit:0:12}"
else
  measured="the working tree at $(git -C "$REPO_ROOT" rev-parse --short=12 HEAD)"
  if [[ -n "$(git -C "$REPO_ROOT" status --porcelain -- roles plugins playbooks molecule/default molecule/shared)" ]]; then
    measured+=", with uncommitted changes"
  fi
fi
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
  sed -n '/^        docker_engine_source/,/^    host_vars:/p' "$src/molecule/default/molecule.yml" | sed '$d' \
    | grep -v -e 'difyops_standins_load:' -e 'dify_stack_image_archives' -e 'dify_secrets_host:' | sed 's/^    //'
  echo "    dify_secrets_host: difyops-bench-$(( n == 1 ? 1 : 2 ))"
  echo "    dify_stack_state: started"
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

# The round-trip counter: $work/rt/ssh, sftp and scp log "program<TAB>host<TAB>task" to
# $DIFYOPS_ROUND_TRIPS for every invocation that reaches a host, then exec the real program (from
# $DIFYOPS_RT_BIN). The task is the one that bench/callback_plugins/current_task.py names in
# $DIFYOPS_CURRENT_TASK. The control master's own commands (`ssh -O check|stop HOST`, sent only
# on reset_connection) are not counted.
mkdir -p "$work/rt"
cat > "$work/rt/ssh" <<'EOF'
#!/bin/bash
prog=${0##*/}
if [[ $# -ge 3 && ${*: -3:1} == -O ]]; then exec "$DIFYOPS_RT_BIN/$prog" "$@"; fi
case $prog in
  ssh) host=${*: -2:1} ;;                                             # ... HOST COMMAND
  sftp) host=${*: -1}; host=${host#[}; host=${host%]} ;;              # ... [HOST]
  scp) host=${*: -1}; [[ $host == *:* ]] || host=${*: -2:1}           # ... [HOST]:PATH, either way
    if [[ $host == [* ]]; then host=${host%%]*}; host=${host#[}; else host=${host%%:*}; fi ;;
esac
task=; [[ -r $DIFYOPS_CURRENT_TASK ]] && read -r task < "$DIFYOPS_CURRENT_TASK"
printf '%s\t%s\t%s\n' "$prog" "$host" "${task:-(no task)}" >> "$DIFYOPS_ROUND_TRIPS"
exec "$DIFYOPS_RT_BIN/$prog" "$@"
EOF
chmod +x "$work/rt/ssh"; cp -p "$work/rt/ssh" "$work/rt/sftp"; cp -p "$work/rt/ssh" "$work/rt/scp"

counted() {  # trips-file command...: run the command with every ssh, sftp and scp call logged to trips-file
  : > "$1"
  env ANSIBLE_SSH_EXECUTABLE="$work/rt/ssh" ANSIBLE_SFTP_EXECUTABLE="$work/rt/sftp" ANSIBLE_SCP_EXECUTABLE="$work/rt/scp" \
    DIFYOPS_RT_BIN="$(dirname "$(command -v ssh)")" ANSIBLE_CALLBACK_PLUGINS="$REPO_ROOT/bench/callback_plugins" \
    ANSIBLE_CALLBACKS_ENABLED=current_task DIFYOPS_CURRENT_TASK="$1.task" DIFYOPS_ROUND_TRIPS="$1" "${@:2}"
}

printf 'name: bare facts\nhosts: all\ngather_facts: true\ntasks: []\n' | sed '1s/^/- /; 2,$s/^/  /' > "$work/facts.yml"
printf '| hosts | round trips per host: mean (min to max) | of which file transfers | controller CPU-s per host | per host / per host at %s host(s) | hosts with every container running |\n| ---: | ---: | ---: | ---: | ---: | ---: |\n' "${sizes[0]}" > "$work/pertable"
: > "$work/details"
printf 'hosts\thost\tprogram\ttask\n' > "$work/trips.tsv"
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
  ansible-playbook -i "$work/inv-$n.yml" "$src/molecule/default/prepare.yml" > "$work/prepare-$n.log" 2>&1 \
    || { tail -30 "$work/prepare-$n.log"; exit 1; }
  log "fleet of $n: facts, site, site again"
  result=$(timed facts "$work/facts-$n.log" ansible-playbook -i "$work/inv-$n.yml" "$work/facts.yml")
  read -r facts facts_cpu _ <<< "$result"
  result=$(timed converge "$work/site-$n.log" ansible-playbook -i "$work/inv-$n.yml" difyops.dify.site)
  read -r converge converge_cpu converge_ctl <<< "$result"
  # The counter itself: a ping of every host is one module call each, so one logged call per host.
  counted "$work/ping-$n.tsv" ansible -i "$work/inv-$n.yml" all -m ansible.builtin.ping > "$work/ping-$n.log" 2>&1 \
    || { tail -30 "$work/ping-$n.log"; exit 1; }
  [[ $(wc -l < "$work/ping-$n.tsv") -eq $n && $(cut -f2 "$work/ping-$n.tsv" | sort -u | wc -l) -eq $n ]] \
    || die "the round-trip counter logged $(wc -l < "$work/ping-$n.tsv") calls for a ping of $n hosts ($work/ping-$n.tsv)"
  result=$(timed rerun "$work/rerun-$n.log" counted "$work/trips-$n.tsv" ansible-playbook -i "$work/inv-$n.yml" difyops.dify.site)
  read -r rerun rerun_cpu rerun_ctl <<< "$result"
  if grep -E 'changed=[1-9]' "$work/rerun-$n.log"; then echo "the rerun on $n hosts changed something" >&2; exit 1; fi
  [[ -s "$work/trips-$n.tsv" ]] || die "the rerun on $n hosts logged no round trip: the wrapper was not used"
  # Per host: address (as the log names it), name, groups, containers running of all.
  : > "$work/hosts-$n"
  running=0
  for ((i = 1; i <= n; i++)); do
    h=difyops-bench-$i
    states=$(podman exec "$h" docker ps -a --format '{{.State}}')
    up=$(grep -c '^running$' <<< "$states" || true); all=$(grep -c . <<< "$states" || true)
    if (( all > 0 && up == all )); then running=$((running + 1)); fi
    groups=$(awk -v h="$h:" '/^        dify_/ { g = $1; sub(/^dify_/, "", g); sub(/:$/, "", g) } $1 == h { printf "%s%s", s, g; s = ", " }' "$work/inv-$n.yml")
    printf '%s\t%s\t%s\t%s of %s\n' "$(address "$h")" "$h" "$groups" "$up" "$all" >> "$work/hosts-$n"
  done
  awk -F '\t' -v n="$n" -v hosts="$work/hosts-$n" -v rows="$work/trips-$n.rows" '
    BEGIN { while ((getline line < hosts) > 0) { split(line, f, "\t"); name[f[1]] = f[2]; grp[f[1]] = f[3]; up[f[1]] = f[4]; order[++k] = f[1] } }
    { trips[$2]++; if ($1 != "ssh") files[$2]++ }
    END {
      for (a in trips) if (!(a in name)) { printf "round trips to %s, not a host of the fleet\n", a > "/dev/stderr"; exit 1 }
      min = -1
      for (i = 1; i <= k; i++) {
        a = order[i]; t = trips[a] + 0; sum += t; ft += files[a]; if (min < 0 || t < min) min = t; if (t > max) max = t
        printf "| %s | %s | %d | %d | %s |\n", name[a], grp[a], t, files[a], up[a] > rows
      }
      printf "%.1f %d %d %d\n", sum / n, min, max, ft
    }' "$work/trips-$n.tsv" > "$work/trips-$n.sum"
  read -r trips_mean trips_min trips_max transfers < "$work/trips-$n.sum"
  awk -F '\t' -v OFS='\t' -v n="$n" 'NR == FNR { name[$1] = $2; next } { print n, name[$2], $1, $3 }' \
    "$work/hosts-$n" "$work/trips-$n.tsv" >> "$work/trips.tsv"
  ctl_host=$(echo "$rerun_ctl / $n" | bc -l)
  [[ -n "${first_ctl_host:-}" ]] || first_ctl_host=$ctl_host
  printf '| %d | %.1f (%d to %d) | %d | %.2f | %.2f | %d of %d |\n' "$n" "$trips_mean" "$trips_min" "$trips_max" "$transfers" \
    "$ctl_host" "$(echo "$ctl_host / $first_ctl_host" | bc -l)" "$running" "$n" >> "$work/pertable"
  {
    printf '\n### %d host(s): round trips of the rerun\n\n' "$n"
    printf '| host | groups | round trips | of which file transfers | containers running |\n| --- | --- | ---: | ---: | --- |\n'
    cat "$work/trips-$n.rows"
    printf '\nTop 10 tasks by round trips (%d round trips in %d tasks; a task counts on every host it ran on):\n\n' \
      "$(wc -l < "$work/trips-$n.tsv")" "$(cut -f3 "$work/trips-$n.tsv" | sort -u | wc -l)"
    printf '| play \\| role : task | round trips | hosts |\n| --- | ---: | ---: |\n'
    awk -F '\t' '{ t[$3]++; if (!(($3, $2) in seen)) { seen[$3, $2] = 1; h[$3]++ } } END { for (k in t) printf "%d\t%d\t%s\n", t[k], h[k], k }' \
      "$work/trips-$n.tsv" | sort -t $'\t' -k1,1nr -k3,3 | awk -F '\t' 'NR <= 10 { gsub(/\|/, "\\|", $3); printf "| %s | %d | %d |\n", $3, $1, $2 }'
  } >> "$work/details"
  [[ -n "$first" ]] || first=$converge
  printf '| %d | %.1f | %.1f | %.1f | %.2f | %.2f | %.1f / %.1f / %.1f | %.1f / %.1f | %.2f of %d |\n' "$n" "$facts" "$converge" "$rerun" \
    "$(echo "$rerun / $facts" | bc -l)" "$(echo "$converge / $first" | bc -l)" \
    "$facts_cpu" "$converge_cpu" "$rerun_cpu" "$converge_ctl" "$rerun_ctl" "$(echo "$converge_cpu / $converge" | bc -l)" "$(nproc)" >> "$work/table"
done
[[ -n "$keep" ]] || cleanup
{
  echo "# difyops.dify.site on podman fleets ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $measured)"; echo; cat "$work/table"
  echo; echo "## The rerun, per host (issue 22)"; echo; cat "$work/pertable"; cat "$work/details"
  echo; echo "Every round trip of the reruns: \`$(basename "${out%.md}")-round-trips.tsv\`."
} | tee "$out"
cp "$work/trips.tsv" "${out%.md}-round-trips.tsv"
