#!/usr/bin/env bash
# ansible-lint (production profile) and the changelog fragments' lint.
source "$(dirname "$0")/lib.sh"
activate_venv
cd "$REPO_ROOT" || exit
export ANSIBLE_COLLECTIONS_PATH="$CACHE_DIR/collections"
ansible-lint --profile production --offline
antsibull-changelog lint
