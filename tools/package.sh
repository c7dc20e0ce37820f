#!/usr/bin/env bash
# Packaging check: build the Galaxy tarball, prove it is clean, install it into a temporary
# path, run a playbook from the installed copy by FQCN, and let Galaxy's importer judge it.
source "$(dirname "$0")/lib.sh"
activate_venv

dist="$CACHE_DIR/dist"
rm -rf "$dist"
mkdir -p "$dist"
ansible-galaxy collection build "$REPO_ROOT" --output-path "$dist" --force >/dev/null
tarball="$(ls "$dist"/difyops-dify-*.tar.gz)"
log "Built $(basename "$tarball") ($(du -h "$tarball" | cut -f1))"

forbidden='(^|/)(\.venv[^/]*|\.ansible|\.cache|\.git|__pycache__|\.pytest_cache|\.hypothesis|tests/output|molecule|bench)(/|$)'
if tar -tzf "$tarball" | grep -E "$forbidden"; then
  die "the tarball carries generated or development files (listed above)"
fi

install_dir="$(mktemp -d "${TMPDIR:-/tmp}/difyops-install.XXXXXX")"
trap 'rm -rf "$install_dir"' EXIT
log "Installing the tarball and running difyops.dify.facts from the installed copy"
(
  cd "$install_dir" || exit
  # Outside the repository and without its ansible.cfg, as a user's machine would be.
  unset ANSIBLE_CONFIG
  export ANSIBLE_COLLECTIONS_PATH="$install_dir"
  # Dependencies come from the `ansible` package in the venv (Galaxy is unreachable here).
  ansible-galaxy collection install "$tarball" -p "$install_dir" --no-deps >/dev/null
  [[ -f "$install_dir/ansible_collections/difyops/dify/MANIFEST.json" ]] || die "install left no MANIFEST.json"
  installed="$(ansible-galaxy collection list difyops.dify --format json)"
  grep -q "$install_dir" <<<"$installed" || die "difyops.dify does not resolve to the installed copy"
  ansible-playbook -i localhost, -c local -e "ansible_python_interpreter=$VENV/bin/python" \
    difyops.dify.facts
)

importer_venv="$CACHE_DIR/venv-importer"
importer_req="$REPO_ROOT/requirements/importer.txt"
ensure_venv "$importer_venv" "$(content_hash "$importer_req")" -r "$importer_req"
log "Running Galaxy's importer on the tarball"
cfg="$install_dir/galaxy-importer.cfg"
printf '[galaxy-importer]\nRUN_ANSIBLE_TEST = False\nRUN_ANSIBLE_LINT = True\nLOG_LEVEL_MAIN = INFO\n' >"$cfg"
# From the temporary directory: the importer writes importer_result.json into its working directory.
(cd "$install_dir" && GALAXY_IMPORTER_CONFIG="$cfg" "$importer_venv/bin/python" -m galaxy_importer.main "$tarball") \
  2>&1 | tee "$install_dir/importer.log"
if grep -E '^(ERROR|WARNING)' "$install_dir/importer.log"; then
  die "Galaxy's importer reported the problems above"
fi
