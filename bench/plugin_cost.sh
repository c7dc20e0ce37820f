#!/usr/bin/env bash
# Benchmark: the controller CPU a task spends on the collection's Jinja plugins (issue 22).
#
# ansible-core resolves a collection's filter by loading every filter file of the collection in the
# worker process that templates it (each task runs in a fresh worker), and compiles the collection's
# Python from source there. This runs three local playbooks of N `debug` tasks each:
#   plain    - a Jinja expression without a plugin of the collection (the baseline),
#   filter   - one call of the collection's cheapest filter (difyops.dify.apt_unlisted),
#   constant - the project directory through the constants lookup (what role defaults read),
# and reports the user + system CPU-seconds of ansible-playbook and its workers (the median of three
# runs), and per task what
# the filter and the lookup add to the baseline. Nothing is contacted: the tasks run on localhost.
#
# usage: bench/plugin_cost.sh [TASKS]   (default 40; with the newest toolchain, `make venv` first)
# Results: bench/results/plugin-cost-<date>.md
source "$(dirname "$0")/../tools/lib.sh"
use_newest_toolchain
"$REPO_ROOT/tools/venv.sh"
activate_venv
export ANSIBLE_COLLECTIONS_PATH="$CACHE_DIR/collections"

tasks=${1:-40}
[[ $tasks =~ ^[1-9][0-9]*$ ]] || die "TASKS must be a positive number, got '$tasks'"
work="$(mktemp -d "${TMPDIR:-/tmp}/difyops-plugin-cost.XXXXXX")"
trap 'rm -rf "$work"' EXIT

declare -A expression=(
  [plain]="{{ 1 + 1 }}"
  [filter]="{{ '' | difyops.dify.apt_unlisted([]) }}"
  [constant]="{{ lookup('difyops.dify.constants', 'project_dir') }}"
)
kinds=(plain filter constant)

# playbook KIND: N debug tasks templating KIND's expression.
playbook() {
  local kind=$1 i
  printf -- '- name: %s\n  hosts: localhost\n  gather_facts: false\n  tasks:\n' "$kind"
  for ((i = 1; i <= tasks; i++)); do
    printf '    - name: Task %d\n      ansible.builtin.debug:\n        msg: "%s"\n' "$i" "${expression[$kind]}"
  done
}

declare -A cpu=()
for kind in "${kinds[@]}"; do
  playbook "$kind" >"$work/$kind.yml"
  # A warm-up run, so that the measured ones do not pay for Python's first compile of Ansible; then
  # the median of three.
  ansible-playbook -i localhost, -c local "$work/$kind.yml" >/dev/null
  for _ in 1 2 3; do
    /usr/bin/time -f '%U %S' -o "$work/$kind.time" ansible-playbook -i localhost, -c local "$work/$kind.yml" \
      >"$work/$kind.log" || { cat "$work/$kind.log" >&2; die "the $kind playbook failed"; }
    awk '{printf "%.2f\n", $1 + $2}' "$work/$kind.time" >>"$work/$kind.runs"
  done
  cpu[$kind]=$(sort -n "$work/$kind.runs" | sed -n 2p)
  log "$kind: ${cpu[$kind]} CPU-s for $tasks tasks (runs: $(paste -sd' ' "$work/$kind.runs"))"
done

per_task() { awk -v a="$1" -v b="${cpu[plain]}" -v n="$tasks" 'BEGIN {printf "%.3f", (a - b) / n}'; }
mkdir -p "$REPO_ROOT/bench/results"
out="$REPO_ROOT/bench/results/plugin-cost-$(date +%Y%m%d-%H%M).md"
{
  echo "# Controller CPU of the collection's Jinja plugins, $(date '+%Y-%m-%d %H:%M')"
  echo
  echo "$(ansible --version | sed -n 1p) on $(python -V), $(nproc) CPUs, commit $(git -C "$REPO_ROOT" rev-parse --short HEAD); $tasks tasks a playbook."
  echo
  echo "| playbook | CPU-s (user + system) | added per task |"
  echo "| --- | ---: | ---: |"
  echo "| plain | ${cpu[plain]} | - |"
  echo "| filter (difyops.dify.apt_unlisted) | ${cpu[filter]} | $(per_task "${cpu[filter]}") |"
  echo "| constant (lookup project_dir) | ${cpu[constant]} | $(per_task "${cpu[constant]}") |"
} >"$out"
cat "$out"
