#!/usr/bin/env bash
# Build the stand-in images that the molecule test hosts run instead of the official images
# Dify's Compose project pulls (the hosts' Docker engines cannot reach a registry), and save
# them all in one docker-archive that the tests `docker load` on each test host.
#
# usage: tools/build-standins.sh [NAME ...]
#   NAME: a directory of tests/standins/ with a Containerfile (default: every such directory).
#
# Every image is built FROM localhost/difyops-test/debian13:latest (tools/build-images.sh) with
# a temporary copy of tests/standins/ as its context and tests/standins/NAME/Containerfile; a
# tests/standins/NAME/build.sh, when there is one, runs first as
# `build.sh CONTEXT/NAME CACHE_DIR` (CACHE_DIR: .cache/standins/build-cache/NAME, kept between
# runs) to put what it builds into the context. Images are tagged
# localhost/difyops-standin/NAME:latest and :HASH, HASH covering the base image's ID, this script
# and every file under tests/standins/; an image whose :HASH exists is not rebuilt.
# Then .cache/standins/standins.tar holds every stand-in (NAME:latest), with
# .cache/standins/standins.tar.id holding the hash it was saved for; it is written again only
# when that changes, and only when every stand-in is built at the current HASH.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

BASE_IMAGE="localhost/difyops-test/debian13:latest"
STANDINS_DIR="$REPO_ROOT/tests/standins"
REPO_PREFIX="localhost/difyops-standin"
OUT_DIR="$CACHE_DIR/standins"
ARCHIVE="$OUT_DIR/standins.tar"
STAMP="$ARCHIVE.id"
SCRIPT="$REPO_ROOT/tools/build-standins.sh"

command -v podman >/dev/null || die "podman is not installed (apt-get install podman runc)"
[[ -d $STANDINS_DIR ]] || die "$STANDINS_DIR does not exist"
podman image exists "$BASE_IMAGE" \
  || die "the base image $BASE_IMAGE is missing: run tools/build-images.sh debian13 first"

# Every stand-in: the directories of tests/standins/ with a Containerfile, sorted.
all_names() {
  local dir
  for dir in "$STANDINS_DIR"/*/; do
    [[ -f "$dir/Containerfile" ]] && basename "$dir"
  done
  return 0
}

# The hash of the base image's ID, this script and tests/standins/ (paths and contents), so
# that any change there rebuilds the images.
inputs_hash() {
  local base_id=$1
  content_hash <(
    printf 'base %s\n' "$base_id"
    sha256sum <"$SCRIPT"
    cd "$STANDINS_DIR" || exit 1
    find . -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | LC_ALL=C sort -z | xargs -0r sha256sum
  )
}

human_size() { numfmt --to=iec-i --suffix=B "$1"; }

# build_one NAME HASH CONTEXT BASE_ID: build NAME unless NAME:HASH exists; tag it :latest.
# Returns non-zero (after saying why) when NAME cannot be built; checks its steps itself, as it
# runs where `set -e` does not apply.
build_one() {
  local name=$1 hash=$2 context=$3 base_id=$4
  local repo="$REPO_PREFIX/$name" start
  if podman image exists "$repo:$hash"; then
    log "$name: $repo:$hash is up to date"
  else
    start=$SECONDS
    if [[ -f "$STANDINS_DIR/$name/build.sh" ]]; then
      local build_cache="$OUT_DIR/build-cache/$name"
      mkdir -p "$build_cache" || return 1
      log "$name: running tests/standins/$name/build.sh"
      if ! bash "$STANDINS_DIR/$name/build.sh" "$context/$name" "$build_cache"; then
        log "ERROR: $name: tests/standins/$name/build.sh failed"
        return 1
      fi
    fi
    log "$name: building $repo:$hash"
    local build_log="$OUT_DIR/build-$name.log"
    if ! podman build --pull=never --format docker --layers \
        --build-arg "BASE=$base_id" --label "io.difyops.standin-hash=$hash" \
        -t "$repo:$hash" -f "$context/$name/Containerfile" "$context" >"$build_log" 2>&1; then
      tail -n 30 "$build_log" >&2
      log "ERROR: $name: podman build failed (whole log: $build_log)"
      return 1
    fi
    log "$name: built in $((SECONDS - start))s"
  fi
  podman tag "$repo:$hash" "$repo:latest" || return 1
  # Builds of older inputs go (an image still used by a container stays).
  local tag
  for tag in $(podman image list --format '{{.Tag}}' --filter "reference=$repo"); do
    [[ $tag == latest || $tag == "$hash" ]] || podman rmi "$repo:$tag" >/dev/null 2>&1 || :
  done
  log "$name: $(human_size "$(podman image inspect --format '{{.Size}}' "$repo:$hash")")"
}

# save_archive HASH NAME...: every stand-in at HASH into one docker-archive, unless the stamp
# says it holds them already.
save_archive() {
  local hash=$1; shift
  local names=("$@") refs=() name stamp_value
  stamp_value="$(printf '%s\n' "$hash" "${names[@]}" | sha256sum | cut -c1-16)"
  if [[ -f $ARCHIVE && -f $STAMP && "$(<"$STAMP")" == "$stamp_value" ]]; then
    log "$ARCHIVE is up to date ($(human_size "$(stat -c %s "$ARCHIVE")"))"
    return 0
  fi
  for name in "${names[@]}"; do
    if ! podman image exists "$REPO_PREFIX/$name:$hash"; then
      log "Not saving $ARCHIVE: $REPO_PREFIX/$name:$hash is not built (run tools/build-standins.sh without names)"
      return 0
    fi
    refs+=("$REPO_PREFIX/$name:latest")
  done
  local start=$SECONDS
  log "Saving ${#refs[@]} images to $ARCHIVE"
  rm -f "$STAMP"
  podman save --quiet --multi-image-archive --format docker-archive -o "$ARCHIVE.tmp" "${refs[@]}" \
    || { rm -f "$ARCHIVE.tmp"; die "podman save failed"; }
  mv -f "$ARCHIVE.tmp" "$ARCHIVE"
  printf '%s\n' "$stamp_value" >"$STAMP"
  log "$ARCHIVE: $(human_size "$(stat -c %s "$ARCHIVE")") in $((SECONDS - start))s"
}

main() {
  local everything names=() name
  mapfile -t everything < <(all_names)
  [[ ${#everything[@]} -gt 0 ]] || die "no stand-in in $STANDINS_DIR (no */Containerfile)"
  if [[ $# -gt 0 ]]; then
    for name in "$@"; do
      [[ -f "$STANDINS_DIR/$name/Containerfile" ]] \
        || die "unknown stand-in '$name' (known: ${everything[*]})"
      names+=("$name")
    done
  else
    names=("${everything[@]}")
  fi

  local base_id hash
  base_id="$(podman image inspect --format '{{.Id}}' "$BASE_IMAGE")"
  hash="$(inputs_hash "$base_id")"
  log "Stand-ins at $hash (base ${base_id:0:12}): ${names[*]}"
  mkdir -p "$OUT_DIR"

  # One copy of tests/standins/ serves as every image's context; build.sh outputs land in it.
  local context
  context="$(mktemp -d "${TMPDIR:-/tmp}/difyops-standins.XXXXXX")"
  # shellcheck disable=SC2064  # the path is fixed now
  trap "rm -rf '$context'" EXIT
  cp -a "$STANDINS_DIR/." "$context/"

  local failed=()
  for name in "${names[@]}"; do
    build_one "$name" "$hash" "$context" "$base_id" || failed+=("$name")
  done
  [[ ${#failed[@]} -eq 0 ]] || die "not built: ${failed[*]} (see above); $ARCHIVE not written"
  save_archive "$hash" "${everything[@]}"
}

main "$@"
