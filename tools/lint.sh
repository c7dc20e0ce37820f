#!/usr/bin/env bash
# ansible-lint (production profile) and the changelog fragments' lint.
source "$(dirname "$0")/lib.sh"
activate_venv
cd "$REPO_ROOT" || exit
# One ansible-lint at a time in the project: make test runs the newest toolchain's beside this one.
mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/lint.lock"
flock 9
export ANSIBLE_COLLECTIONS_PATH="$CACHE_DIR/collections"
ansible-lint --profile production --offline
antsibull-changelog lint
