#!/usr/bin/env bash
# ansible-lint (production profile) and the changelog fragments' lint.
source "$(dirname "$0")/lib.sh"
activate_venv
cd "$REPO_ROOT" || exit
# make test runs the newest toolchain's beside this one, at once: each keeps its cache in its own
# virtual environment (ansible-compat's VIRTUAL_ENV/.ansible); the project gets nothing from either.
export ANSIBLE_COLLECTIONS_PATH="$CACHE_DIR/collections"
ansible-lint --profile production --offline
antsibull-changelog lint
