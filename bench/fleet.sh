#!/usr/bin/env bash
# Benchmark of difyops.dify.site on podman fleets of 1, 4 and 8 hosts (issue 8).
#
# For each size N: start N privileged Debian 13 systemd hosts (the test image), prepare them as
# the molecule default scenario does (the distribution's Docker and the STAND-IN images), then time
#   1. a bare fact-gathering play (gather_facts: true, no tasks) on the N hosts,
#   2. the first converge of difyops.dify.site,
#   3. the idempotent rerun of site (its changed count is checked to be 0),
# all in the same run on the same hosts. Goals: rerun <= 4 x facts; site on 8 hosts <= 2 x site on
# 1 host. Layouts: 1 host = single node; N > 1 = host 1 gateway + app (+ beat), host 2 database,
# Redis and vector store, hosts 3.. app hosts (split app hosts use a placeholder S3 endpoint: the
# stack is created, not started, as in the molecule scenario).
#
# usage: bench/fleet.sh [SIZES...]     (default: 1 4 8; `make venv images` first)
# Results: a table on stdout and in bench/results/fleet-<date>.md.
set -euo pipefail
source "$(dirname "$0")/../tools/lib.sh"
activate_venv
export ANSIBLE_COLLECTIONS_PATH="$CACHE_DIR/collections" ANSIBLE_FORCE_COLOR=0 ANSIBLE_HOST_KEY_CHECKING=false
# Every run gathers for real: no facts from the repository's fact cache (ansible.cfg).
export ANSIBLE_GATHERING=implicit ANSIBLE_CACHE_PLUGIN=memory
sizes=("$@"); [[ ${#sizes[@]} -gt 0 ]] || sizes=(1 4 8)
image=${DIFYOPS_IMAGE_DEBIAN13:-localhost/difyops-test/debian13:latest}
work=$(mktemp -d); trap 'cleanup; rm -rf "$work"' EXIT
net=difyops-bench
mkdir -p "$REPO_ROOT/bench/results"
out="$REPO_ROOT/bench/results/fleet-$(date +%Y%m%d).md"

cleanup() { podman ps -a --format '{{.Names}}' | { grep '^difyops-bench-' || true; } | xargs -r podman rm -f >/dev/null; }

inventory() {  # N -> YAML inventory on stdout
  local n=$1 i groups
  echo "all:"
  echo "  vars:"
  echo "    ansible_connection: containers.podman.podman"
  echo "    ansible_python_interpreter: /usr/bin/python3"
  sed -n '/^        docker_engine_source/,/^verifier:/p' "$REPO_ROOT/molecule/default/molecule.yml" | sed '$d' | sed 's/^    //'
  if (( n > 1 )); then
    echo "    dify_object_storage: {endpoint: 'https://s3.bench.invalid', bucket: dify}"
    echo "    dify_stack_object_storage: {endpoint: 'https://s3.bench.invalid', bucket: dify}"
    echo "    dify_secrets_given: {S3_ACCESS_KEY: bench-access-key-0000, S3_SECRET_KEY: bench-secret-key-00000000}"
  fi
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
      if [[ " $groups " == *" $g "* ]]; then echo "            difyops-bench-$i: {}"; fi
    done
  done
}

timed() {  # label logfile command... -> seconds on stdout
  local start end; start=$(date +%s.%N)
  "${@:3}" > "$2" 2>&1 || { echo "FAILED: $1 (see $2)" >&2; tail -30 "$2" >&2; exit 1; }
  end=$(date +%s.%N); echo "$end - $start" | bc
}

printf 'name: bare facts\nhosts: all\ngather_facts: true\ntasks: []\n' | sed '1s/^/- /; 2,$s/^/  /' > "$work/facts.yml"
printf '| hosts | facts play (s) | site, first converge (s) | site, rerun (s) | rerun / facts | site / site on 1 host |\n| ---: | ---: | ---: | ---: | ---: | ---: |\n' > "$work/table"
podman network exists "$net" || podman network create "$net" >/dev/null
first=""
for n in "${sizes[@]}"; do
  cleanup
  for ((i = 1; i <= n; i++)); do
    podman run -d --name "difyops-bench-$i" --hostname "difyops-bench-$i" --network "$net" --privileged \
      --systemd=always "$image" /sbin/init >/dev/null
  done
  inventory "$n" > "$work/inv-$n.yml"
  log "fleet of $n: prepare"
  ansible-playbook -i "$work/inv-$n.yml" "$REPO_ROOT/molecule/default/prepare.yml" > "$work/prepare-$n.log" 2>&1 \
    || { tail -30 "$work/prepare-$n.log"; exit 1; }
  log "fleet of $n: facts, site, site again"
  facts=$(timed facts "$work/facts-$n.log" ansible-playbook -i "$work/inv-$n.yml" "$work/facts.yml")
  converge=$(timed converge "$work/site-$n.log" ansible-playbook -i "$work/inv-$n.yml" difyops.dify.site)
  rerun=$(timed rerun "$work/rerun-$n.log" ansible-playbook -i "$work/inv-$n.yml" difyops.dify.site)
  if grep -E 'changed=[1-9]' "$work/rerun-$n.log"; then echo "the rerun on $n hosts changed something" >&2; exit 1; fi
  [[ -n "$first" ]] || first=$converge
  printf '| %d | %.1f | %.1f | %.1f | %.2f | %.2f |\n' "$n" "$facts" "$converge" "$rerun" \
    "$(echo "$rerun / $facts" | bc -l)" "$(echo "$converge / $first" | bc -l)" >> "$work/table"
done
cleanup
{ echo "# difyops.dify.site on podman fleets ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs)"; echo; cat "$work/table"; } | tee "$out"
