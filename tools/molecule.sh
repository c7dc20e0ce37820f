#!/usr/bin/env bash
# Build the podman test hosts (cached) and run molecule scenarios with the podman driver.
# usage: tools/molecule.sh [SCENARIO ...]   (default: every scenario under molecule/)
source "$(dirname "$0")/lib.sh"
activate_venv

"$REPO_ROOT/tools/build-images.sh"
# The images the `stack` scenario's Docker runs (real services and contract stand-ins).
"$REPO_ROOT/tools/build-standins.sh"

scenarios=("$@")
if [[ ${#scenarios[@]} -eq 0 ]]; then
  for f in "$REPO_ROOT"/molecule/*/molecule.yml; do
    scenarios+=("$(basename "$(dirname "$f")")")
  done
fi

export ANSIBLE_COLLECTIONS_PATH="$CACHE_DIR/collections"
export ANSIBLE_FORCE_COLOR=0 PY_COLORS=0
cd "$REPO_ROOT" || exit
for scenario in "${scenarios[@]}"; do
  log "molecule test -s $scenario"
  molecule test -s "$scenario"
done
