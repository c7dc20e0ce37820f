#!/usr/bin/env bash
# Unit and property tests for everything under plugins/ (pytest; exit 5, "no tests", is a failure).
source "$(dirname "$0")/lib.sh"
activate_venv
cd "$REPO_ROOT" || exit
# Plugins import themselves as ansible_collections.difyops.dify.*; the link in .cache provides that.
export PYTHONPATH="$CACHE_DIR/collections${PYTHONPATH:+:$PYTHONPATH}"
python -m pytest -p no:cacheprovider tests/unit "$@"
