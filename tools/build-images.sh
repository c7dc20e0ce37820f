#!/usr/bin/env bash
# Build the podman test hosts from Debian's packages only: debootstrap -> podman import ->
# tests/podman/Containerfile. Each image is tagged with a hash of its inputs and built once;
# localhost/difyops-test/<name>:latest points at the current build.
#
# usage: tools/build-images.sh [debian12|debian13 ...]   (default: all)
source "$(dirname "$0")/lib.sh"

declare -A SUITES=([debian12]=bookworm [debian13]=trixie)
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

build_one() {
  local name=$1 suite=${SUITES[$1]:-}
  [[ -n $suite ]] || die "unknown image '$name' (known: ${!SUITES[*]})"
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
[[ ${#names[@]} -gt 0 ]] || names=(debian12 debian13)
for name in "${names[@]}"; do
  build_one "$name"
done
