#!/usr/bin/env bash
# Build the podman test hosts (cached) and run molecule scenarios with the podman driver.
# usage: tools/molecule.sh [SCENARIO ...]   (default: every scenario under molecule/)
source "$(dirname "$0")/lib.sh"
activate_venv

start=$SECONDS
"$REPO_ROOT/tools/build-images.sh"
# The images the `stack` scenario's Docker runs (real services and contract stand-ins).
"$REPO_ROOT/tools/build-standins.sh"
log "test images and stand-ins ready in $((SECONDS - start))s"

scenarios=("$@")
if [[ ${#scenarios[@]} -eq 0 ]]; then
  for f in "$REPO_ROOT"/molecule/*/molecule.yml; do
    scenarios+=("$(basename "$(dirname "$f")")")
  done
fi

export ANSIBLE_COLLECTIONS_PATH="$CACHE_DIR/collections"
export ANSIBLE_FORCE_COLOR=0 PY_COLORS=0
cd "$REPO_ROOT" || exit
# Each scenario's time goes into the log, so that CI's budget can be followed scenario by scenario.
for scenario in "${scenarios[@]}"; do
  log "molecule test -s $scenario"
  start=$SECONDS
  molecule test -s "$scenario"
  log "molecule test -s $scenario: passed in $((SECONDS - start))s"
done
