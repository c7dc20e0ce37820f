#!/usr/bin/env bash
# Build the podman test hosts from Debian's packages only: debootstrap -> podman import ->
# tests/podman/Containerfile. debian13-docker is debian13 with the distribution's Docker installed
# (tests/podman/Containerfile.docker), for the scenarios that run Docker without testing its
# installation. Each image is tagged with a hash of its inputs (a derived image's include its base's
# tag) and built once; localhost/difyops-test/<name>:latest points at the current build.
#
# usage: tools/build-images.sh [debian12|debian13|debian13-docker ...]   (default: all)
source "$(dirname "$0")/lib.sh"

declare -A SUITES=([debian12]=bookworm [debian13]=trixie)
# Derived images: name -> the image they are built from.
declare -A DERIVED=([debian13-docker]=debian13)
MIRROR="${DIFYOPS_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PACKAGES="python3,python3-apt,systemd,systemd-sysv,dbus,ca-certificates,iproute2,procps,sudo,gnupg,curl"

command -v podman >/dev/null || die "podman is not installed (apt-get install podman runc)"
command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
[[ $EUID -eq 0 ]] || die "debootstrap needs root"

inputs_hash() {
  local name=$1
  { printf '%s %s %s\n' "$name" "${SUITES[$name]}" "$PACKAGES"
    cat "$REPO_ROOT/tools/build-images.sh" "$REPO_ROOT/tests/podman/Containerfile"; } \
    | sha256sum | cut -c1-16
}

# build_derived NAME: NAME's Containerfile on top of its base's current build (built first).
build_derived() {
  local name=$1 base=${DERIVED[$1]}
  build_one "$base"
  local base_ref; base_ref="localhost/difyops-test/$base:$(inputs_hash "$base")"
  local repo="localhost/difyops-test/$name" file="$REPO_ROOT/tests/podman/Containerfile.${name#*-}"
  local tag; tag="$({ printf '%s\n' "$base_ref"; cat "$file"; } | sha256sum | cut -c1-16)"
  if podman image exists "$repo:$tag"; then
    log "$repo:$tag is up to date"
  else
    log "Building $repo:$tag from $base_ref"
    podman build --quiet --build-arg "BASE=$base_ref" -t "$repo:$tag" -f "$file" \
      "$REPO_ROOT/tests/podman" >/dev/null || die "building $repo failed"
  fi
  podman tag "$repo:$tag" "$repo:latest"
}

build_one() {
  local name=$1 suite=${SUITES[$1]:-}
  if [[ -z $suite && -n ${DERIVED[$name]:-} ]]; then build_derived "$name"; return; fi
  [[ -n $suite ]] || die "unknown image '$name' (known: ${!SUITES[*]} ${!DERIVED[*]})"
  local repo="localhost/difyops-test/$name"
  local tag; tag="$(inputs_hash "$name")"
  if podman image exists "$repo:$tag"; then
    log "$repo:$tag is up to date"
  else
    local rootfs; rootfs="$(mktemp -d "${TMPDIR:-/tmp}/difyops-rootfs.XXXXXX")"
    trap 'rm -rf "$rootfs"' RETURN
    log "debootstrap $suite into $rootfs"
    debootstrap --variant=minbase --include="$PACKAGES" "$suite" "$rootfs" "$MIRROR" \
      >"$rootfs.log" 2>&1 || { tail -20 "$rootfs.log" >&2; die "debootstrap $suite failed"; }
    rm -f "$rootfs.log"
    log "Importing $repo-rootfs:$tag"
    tar -C "$rootfs" --numeric-owner -c . | podman import --quiet - "$repo-rootfs:$tag" >/dev/null
    log "Building $repo:$tag"
    podman build --quiet --build-arg "BASE=$repo-rootfs:$tag" --build-arg "SUITE=$suite" \
      -t "$repo:$tag" -f "$REPO_ROOT/tests/podman/Containerfile" "$REPO_ROOT/tests/podman" >/dev/null
    podman rmi --force "$repo-rootfs:$tag" >/dev/null
  fi
  podman tag "$repo:$tag" "$repo:latest"
}

names=("$@")
[[ ${#names[@]} -gt 0 ]] || names=(debian12 debian13 debian13-docker)
for name in "${names[@]}"; do
  build_one "$name"
done
