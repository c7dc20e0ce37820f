#!/usr/bin/env bash
# Run `ansible-test sanity` from a real ansible_collections/difyops/dify copy of the tree
# (ansible-test refuses symlinks), in a virtual environment of its own so that its pinned
# linters do not fight ansible-lint's.
source "$(dirname "$0")/lib.sh"

sanity_venv="$CACHE_DIR/venv-sanity"
core_pin="$(grep -E '^ansible-core==' "$REPO_ROOT/requirements/test.txt")"
stamp="$sanity_venv/.stamp-${core_pin#ansible-core==}"
if [[ ! -f "$stamp" ]]; then
  log "Creating the sanity virtual environment ($core_pin)"
  rm -rf "$sanity_venv"
  "$PYTHON" -m venv "$sanity_venv"
  "$sanity_venv/bin/python" -m pip install --quiet --upgrade pip
  "$sanity_venv/bin/python" -m pip install --quiet "$core_pin"
  touch "$stamp"
fi

dest="$CACHE_DIR/sanity/ansible_collections/difyops/dify"
rm -rf "$dest"
mkdir -p "$dest"
# Tracked and not-ignored files as they are in the working tree.
(cd "$REPO_ROOT" && git ls-files -z --cached --others --exclude-standard \
  | tar --null -T - --ignore-failed-read -cf - 2>/dev/null) | tar -C "$dest" -xf -

cd "$dest"
export PATH="$sanity_venv/bin:$PATH"
unset ANSIBLE_CONFIG
ansible-test sanity --local --requirements --python "$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')" \
  --color no "$@"
