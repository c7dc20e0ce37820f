#!/usr/bin/env bash
# Run `ansible-test sanity` from a real ansible_collections/difyops/dify copy of the tree
# (ansible-test refuses symlinks), in a virtual environment of its own so that its pinned
# linters do not fight ansible-lint's.
source "$(dirname "$0")/lib.sh"

core_pin="$(grep -E '^ansible-core==' "$REQUIREMENTS")"
python_version="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
sanity_venv="$CACHE_DIR/venv-sanity-${core_pin#ansible-core==}-py$python_version"
ensure_venv "$sanity_venv" "${core_pin#ansible-core==}" "$core_pin"

# Outside the repository: inside it, ansible-test would list files through the outer git
# checkout, which ignores .cache, and skip everything.
dest="${TMPDIR:-/tmp}/difyops-sanity-py$python_version/ansible_collections/difyops/dify"
rm -rf "$dest"
mkdir -p "$dest"
# Tracked and not-ignored files as they are in the working tree.
(cd "$REPO_ROOT" && git ls-files -z --cached --others --exclude-standard \
  | tar --null -T - --ignore-failed-read -cf - 2>/dev/null) | tar -C "$dest" -xf -

# ansible-test bootstraps pip in each sanity venv with a script it downloads from an unreachable
# host; give it the offline stand-in under the name it looks for.
pip_version="$(grep -hoE "pip='[0-9.]+'" "$sanity_venv"/lib/python*/site-packages/ansible_test/_internal/python_requirements.py | head -1 | tr -dc '0-9.')"
[[ -n $pip_version ]] || die "cannot tell which pip ansible-test bootstraps"
mkdir -p "$HOME/.ansible/test/cache"
install -m 0644 "$REPO_ROOT/tools/get_pip_offline.py" "$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"

cd "$dest" || exit
export PATH="$sanity_venv/bin:$PATH"
unset ANSIBLE_CONFIG
ansible-test sanity --local --requirements --python "$python_version" --color no "$@"
