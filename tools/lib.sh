# shellcheck shell=bash
# Common environment for the project's tools; sourced, never run.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DIFYOPS_VENV:-$REPO_ROOT/.venv}"
# The pinned toolchain this checkout's tools install (requirements/newest.txt for the newest one).
export REQUIREMENTS="${DIFYOPS_REQUIREMENTS:-$REPO_ROOT/requirements/test.txt}"
CACHE_DIR="$REPO_ROOT/.cache"
PYTHON="${DIFYOPS_PYTHON:-python3}"

# Podman reads the project's own settings; /etc/containers is never touched.
export CONTAINERS_CONF="$REPO_ROOT/tests/podman/containers.conf"
# Ansible finds difyops.dify through a link in the cache (see ansible.cfg).
export ANSIBLE_CONFIG="$REPO_ROOT/ansible.cfg"
# Logs are read as plain text.
export NO_COLOR=1 ANSIBLE_NOCOLOR=1 PY_COLORS=0

# pip, without the warnings about this machine's unused local indexes.
pip_install() {
  local py=$1; shift
  "$py" -m pip install --quiet "$@" 2> >(grep -v "is ignored: it is neither" >&2)
}

# Create the virtual environment DIR with `pip install ARGS...`, unless it was made for KEY already.
# usage: ensure_venv DIR KEY ARGS...
ensure_venv() {
  local dir=$1 key=$2
  shift 2
  [[ -f "$dir/.stamp-$key" ]] && return 0
  log "Creating the virtual environment $dir"
  rm -rf "$dir"
  "$PYTHON" -m venv "$dir"
  pip_install "$dir/bin/python" --upgrade pip
  # No byte-compiling at install: the `ansible` package alone brings about 14,000 modules, of which
  # the tools import a few hundred; Python compiles those on first import. On a fresh machine, where
  # every check competes for the CPUs, that saves compiling the rest in each environment.
  pip_install "$dir/bin/python" --no-compile "$@"
  touch "$dir/.stamp-$key"
}

# The newest toolchain's Python (3.13, else 3.12): DIFYOPS_PYTHON_NEWEST, else pyenv's, else PATH's.
newest_python() {
  local candidate version
  if [[ -n ${DIFYOPS_PYTHON_NEWEST:-} ]]; then
    echo "$DIFYOPS_PYTHON_NEWEST"
    return 0
  fi
  for version in 3.13 3.12; do
    for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$version".*/bin/python"$version" "$(command -v "python$version" || true)"; do
      if [[ -x $candidate ]] && "$candidate" -c 'import venv' 2>/dev/null; then
        echo "$candidate"
        return 0
      fi
    done
  done
  die "the newest toolchain needs Python 3.12 or 3.13 (pyenv install 3.13, or set DIFYOPS_PYTHON_NEWEST)"
}

# Switch this shell's tools to the newest pinned toolchain (requirements/newest.txt: ansible-core
# 2.21 on Python 3.13 or 3.12, in .venv-newest); tools run from it inherit the choice.
use_newest_toolchain() {
  PYTHON="$(newest_python)"
  REQUIREMENTS="$REPO_ROOT/requirements/newest.txt"
  VENV="${DIFYOPS_VENV_NEWEST:-$REPO_ROOT/.venv-newest}"
  export DIFYOPS_PYTHON="$PYTHON" DIFYOPS_REQUIREMENTS="$REQUIREMENTS" DIFYOPS_VENV="$VENV"
}

# The wall-clock time in each line lets a CI log be read as a time budget.
log() { printf '==> %(%H:%M:%S)T %s\n' -1 "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# Hash of files' contents, for caches keyed on their inputs.
content_hash() { cat "$@" | sha256sum | cut -c1-16; }

ensure_collection_link() {
  local ns_dir="$CACHE_DIR/collections/ansible_collections/difyops"
  mkdir -p "$ns_dir"
  if [[ "$(readlink "$ns_dir/dify" 2>/dev/null)" != "$REPO_ROOT" ]]; then
    # Replaced in one rename: make test runs two toolchains' checks at once, and either may come here.
    rm -rf "$ns_dir/dify.$$"
    ln -s "$REPO_ROOT" "$ns_dir/dify.$$"
    [[ -L "$ns_dir/dify" || ! -e "$ns_dir/dify" ]] || rm -rf "$ns_dir/dify"
    mv -T "$ns_dir/dify.$$" "$ns_dir/dify"
  fi
}

activate_venv() {
  # shellcheck disable=SC1091
  source "$VENV/bin/activate"
  ensure_collection_link
}
