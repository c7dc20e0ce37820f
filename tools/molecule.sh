#!/usr/bin/env bash
# Build the podman test hosts (cached) and run molecule scenarios with the podman driver.
# usage: tools/molecule.sh [SCENARIO ...]   (default: every scenario under molecule/)
# With no scenario named, every scenario runs, in two lanes at once (one scenario after the other in each) - the fleet
# scenarios (default, stack: many hosts, most of the time) in one, the others in the second - so
# that their waits (apt, image loads, health checks) overlap. Their output is prefixed with the lane.
# DIFYOPS_MOLECULE_LANES=1, or naming scenarios, runs them one after the other.
source "$(dirname "$0")/lib.sh"
# Molecule runs with the newest pinned toolchain (ansible-core 2.21), what operators install today;
# unit, sanity and lint run with both (tools/test-all.sh).
use_newest_toolchain
"$REPO_ROOT/tools/venv.sh"
activate_venv
log "molecule with $(ansible --version | head -1) on $(python -V)"

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

fleet=(default stack)
others=()
for f in "$REPO_ROOT"/molecule/*/molecule.yml; do
  name=$(basename "$(dirname "$f")")
  [[ " ${fleet[*]} " == *" $name "* ]] || others+=("$name")
done
started=$SECONDS
# Line-buffered prefixes keep each lane's lines whole in the interleaved output.
( run_lane "${fleet[@]}" 2>&1 | sed -u 's/^/[fleet] /' ) &
fleet_pid=$!
( run_lane "${others[@]}" 2>&1 | sed -u 's/^/[others] /' ) &
others_pid=$!
status=0
wait "$fleet_pid" || status=1
wait "$others_pid" || status=1
log "molecule: both lanes $([[ $status -eq 0 ]] && echo passed || echo "did not pass") in $((SECONDS - started))s"
exit "$status"
