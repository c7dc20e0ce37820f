#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment from the pinned requirements
# (requirements/test.txt, or DIFYOPS_REQUIREMENTS). Rebuilt only when the requirements change.
source "$(dirname "$0")/lib.sh"

ensure_venv "$VENV" "$(content_hash "$REQUIREMENTS")" -r "$REQUIREMENTS"
