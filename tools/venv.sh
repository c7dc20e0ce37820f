#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment from requirements/test.txt.
# Rebuilt only when the requirements change.
source "$(dirname "$0")/lib.sh"

req="$REPO_ROOT/requirements/test.txt"
stamp="$VENV/.requirements-$(content_hash "$req")"
if [[ -f "$stamp" ]]; then
  exit 0
fi
log "Creating virtual environment $VENV"
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
pip_install "$VENV/bin/python" --upgrade pip
pip_install "$VENV/bin/python" -r "$req"
touch "$stamp"
