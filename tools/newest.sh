#!/usr/bin/env bash
# Unit tests, ansible-test sanity and ansible-lint again with the newest pinned toolchain
# (requirements/newest.txt: ansible-core 2.21 on Python 3.13 or 3.12), in .venv-newest.
source "$(dirname "$0")/lib.sh"

python="$(newest_python)"
export DIFYOPS_PYTHON="$python"
export DIFYOPS_REQUIREMENTS="$REPO_ROOT/requirements/newest.txt"
export DIFYOPS_VENV="${DIFYOPS_VENV_NEWEST:-$REPO_ROOT/.venv-newest}"
"$REPO_ROOT/tools/venv.sh"
for tool in unit sanity lint; do
  log "$tool with $(grep -E '^ansible-core==' "$DIFYOPS_REQUIREMENTS") on $("$python" -V)"
  "$REPO_ROOT/tools/$tool.sh"
done
