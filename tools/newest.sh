#!/usr/bin/env bash
# Unit tests, ansible-test sanity and ansible-lint again with the newest pinned toolchain
# (requirements/newest.txt: ansible-core 2.21 on Python 3.13 or 3.12), in .venv-newest.
source "$(dirname "$0")/lib.sh"

use_newest_toolchain
"$REPO_ROOT/tools/venv.sh"
for tool in unit sanity lint; do
  log "$tool with $(grep -E '^ansible-core==' "$REQUIREMENTS") on $("$PYTHON" -V)"
  "$REPO_ROOT/tools/$tool.sh"
done
