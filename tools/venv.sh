#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment from requirements/test.txt.
# Rebuilt only when the requirements change.
source "$(dirname "$0")/lib.sh"

req="$REPO_ROOT/requirements/test.txt"
ensure_venv "$VENV" "$(content_hash "$req")" -r "$req"
