#!/usr/bin/env bash
# Deploy the single node of the `stack` scenario in a local podman test host with
# difyops.dify.site, leave it running and print the URL to open (from this machine).
# usage: tools/demo.sh [destroy]
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"
activate_venv

export ANSIBLE_COLLECTIONS_PATH="$CACHE_DIR/collections"
cd "$REPO_ROOT" || exit
if [[ ${1:-} == destroy ]]; then
  molecule destroy -s stack
  exit
fi
"$REPO_ROOT/tools/build-images.sh" debian13
"$REPO_ROOT/tools/build-standins.sh"
log "difyops.dify.site on the podman host difyops-stack1 (molecule converge -s stack)"
molecule converge -s stack | tee "$CACHE_DIR/demo.log" | grep -E '^PLAY \[|"open"|fatal:|failed=[1-9]' || :
[[ ${PIPESTATUS[0]} -eq 0 ]] || die "site failed; the whole output is in $CACHE_DIR/demo.log"
url="$(grep -oE '"open": "[^"]+"' "$CACHE_DIR/demo.log" | tail -1 | cut -d'"' -f4)"
[[ -n $url ]] || die "site ran but named no URL; see $CACHE_DIR/demo.log"
log "Dify (stand-ins for its own images, real PostgreSQL, Redis, nginx and squid) answers at $url"
log "Remove it with: tools/demo.sh destroy"
