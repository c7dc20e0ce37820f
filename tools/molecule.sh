#!/usr/bin/env bash
# Build the podman test hosts (cached) and run molecule scenarios with the podman driver.
# usage: tools/molecule.sh [SCENARIO ...]   (default: every scenario under molecule/)
# With no scenario named, every scenario runs, two at a time: two lanes take the next scenario from
# one queue, the longest first (the order of LONGEST_FIRST, by their times in CI), so that both
# lanes end at about the same time and their waits (apt, image loads, health checks) overlap. Each
# line of output is prefixed with its scenario. A failure stops both lanes from starting another.
# DIFYOPS_MOLECULE_LANES=1, or naming scenarios, runs them one after the other.
source "$(dirname "$0")/lib.sh"
# Molecule runs with the newest pinned toolchain (ansible-core 2.21), what operators install today;
# unit, sanity and lint run with both (tools/test-all.sh).
use_newest_toolchain
"$REPO_ROOT/tools/venv.sh"
activate_venv
log "molecule with $(ansible --version | sed -n 1p) on $(python -V)"

start=$SECONDS
"$REPO_ROOT/tools/build-images.sh"
# The images the `stack` scenario's Docker runs (real services and contract stand-ins).
"$REPO_ROOT/tools/build-standins.sh"
log "test images and stand-ins ready in $((SECONDS - start))s"

export ANSIBLE_COLLECTIONS_PATH="$CACHE_DIR/collections"
export ANSIBLE_FORCE_COLOR=0 PY_COLORS=0
cd "$REPO_ROOT" || exit

# run_lane SCENARIO...: one after the other, stopping at the first failure. Each scenario's time
# goes into the log, so that CI's budget can be followed scenario by scenario.
run_lane() {
  local scenario began
  for scenario in "$@"; do
    log "molecule test -s $scenario"
    began=$SECONDS
    if ! molecule test -s "$scenario"; then
      log "molecule test -s $scenario: FAILED after $((SECONDS - began))s"
      return 1
    fi
    log "molecule test -s $scenario: passed in $((SECONDS - began))s"
  done
}

if [[ $# -gt 0 || ${DIFYOPS_MOLECULE_LANES:-2} == 1 ]]; then
  scenarios=("$@")
  if [[ ${#scenarios[@]} -eq 0 ]]; then
    for f in "$REPO_ROOT"/molecule/*/molecule.yml; do
      scenarios+=("$(basename "$(dirname "$f")")")
    done
  fi
  run_lane "${scenarios[@]}"
  exit
fi

# Longest first (CI, 2026-11-30): the split fleet, the single node, the services fleet, then the rest.
LONGEST_FIRST=(default stack services container_runtime host_tuning secrets hardware_facts)
scenarios=()
for name in "${LONGEST_FIRST[@]}"; do
  if [[ -f "$REPO_ROOT/molecule/$name/molecule.yml" ]]; then scenarios+=("$name"); fi
done
for f in "$REPO_ROOT"/molecule/*/molecule.yml; do
  name=$(basename "$(dirname "$f")")
  [[ " ${scenarios[*]} " == *" $name "* ]] || scenarios+=("$name")
done
queue="$CACHE_DIR/molecule-queue"
mkdir -p "$CACHE_DIR"
printf '0\n' > "$queue"
rm -f "$queue.failed"

# next_scenario: the queue's next scenario on stdout, or nothing once it is empty or a lane failed.
next_scenario() {
  local index
  exec 8>"$queue.lock"
  flock 8
  index=$(<"$queue")
  if [[ ! -e "$queue.failed" && $index -lt ${#scenarios[@]} ]]; then
    printf '%d\n' "$((index + 1))" > "$queue"
    printf '%s\n' "${scenarios[$index]}"
  fi
  flock -u 8
}

# lane: run scenarios from the queue until it is empty; a failure marks the queue.
lane() {
  local scenario
  while scenario=$(next_scenario) && [[ -n $scenario ]]; do
    if ! run_lane "$scenario" 2>&1 | sed -u "s/^/[$scenario] /"; then
      touch "$queue.failed"
      return 1
    fi
  done
}

started=$SECONDS
lane &
first_pid=$!
lane &
second_pid=$!
status=0
wait "$first_pid" || status=1
wait "$second_pid" || status=1
log "molecule: $([[ $status -eq 0 ]] && echo "every scenario passed" || echo "a scenario FAILED") in $((SECONDS - started))s"
exit "$status"
