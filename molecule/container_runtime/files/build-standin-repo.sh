#!/usr/bin/env bash
# Builds a signed, flat apt repository with the same layout as NVIDIA's libnvidia-container/stable
# mirror, holding TEST STAND-IN packages of the NVIDIA Container Toolkit at two versions. Run on the
# scenario's mirror host by prepare.yml.   usage: build-standin-repo.sh ROOT NVIDIA_CTK_PY
set -euo pipefail
root=$1 ctk=$2
arch=$(dpkg --print-architecture)
repo="$root/libnvidia-container/stable/deb/$arch"
export GNUPGHOME="$root.gnupg"
mkdir -p "$repo" "$GNUPGHOME"
chmod 700 "$GNUPGHOME"

if ! gpg --list-secret-keys mirror@difyops.test >/dev/null 2>&1; then
  gpg --batch --passphrase '' --quick-gen-key "difyops test mirror <mirror@difyops.test>" rsa3072 sign never
fi
gpg --armor --export mirror@difyops.test > "$root/libnvidia-container/gpgkey"

# package NAME VERSION DEPENDS -- FILE=CONTENT...
package() {
  local name=$1 version=$2 depends=$3 dir
  dir=$(mktemp -d)
  mkdir -p "$dir/DEBIAN" "$dir/usr/bin" "$dir/usr/share/doc/$name"
  {
    echo "Package: $name"
    echo "Version: $version"
    echo "Architecture: $arch"
    echo "Maintainer: difyops test suite <tests@difyops.test>"
    [[ -n $depends ]] && echo "Depends: $depends"
    echo "Description: TEST STAND-IN for NVIDIA's $name (not NVIDIA software)"
    echo " Built by the difyops molecule scenario container_runtime; see nvidia-ctk."
  } > "$dir/DEBIAN/control"
  echo "Test stand-in for $name $version; not NVIDIA software." > "$dir/usr/share/doc/$name/README.stand-in"
  case $name in
    nvidia-container-toolkit-base)
      { echo '#!/usr/bin/python3'; sed "s/@VERSION@/${version%-*}/" "$ctk"; } > "$dir/usr/bin/nvidia-ctk"
      printf '#!/bin/sh\n# Test stand-in: passes straight through to runc.\nexec runc "$@"\n' \
        > "$dir/usr/bin/nvidia-container-runtime"
      chmod 755 "$dir/usr/bin/nvidia-ctk" "$dir/usr/bin/nvidia-container-runtime";;
    nvidia-container-toolkit)
      printf '#!/bin/sh\n# Test stand-in: an OCI prestart hook that adds nothing.\nexit 0\n' \
        > "$dir/usr/bin/nvidia-container-runtime-hook"
      chmod 755 "$dir/usr/bin/nvidia-container-runtime-hook";;
    libnvidia-container-tools)
      printf '#!/bin/sh\necho "cli-version: %s (test stand-in)"\n' "${version%-*}" > "$dir/usr/bin/nvidia-container-cli"
      chmod 755 "$dir/usr/bin/nvidia-container-cli";;
  esac
  rmdir --ignore-fail-on-non-empty "$dir/usr/bin"
  dpkg-deb --root-owner-group --build "$dir" "$repo/${name}_${version}_${arch}.deb" >/dev/null
  rm -rf "$dir"
}

# Dependencies as NVIDIA declares them: only the base package is tied to an exact version, so
# pinning the toolkit alone would pull the newest tools and library.
for version in 1.17.8-1 1.18.0-1; do
  package libnvidia-container1 "$version" ""
  package libnvidia-container-tools "$version" "libnvidia-container1 (>= $version)"
  package nvidia-container-toolkit-base "$version" "python3"
  package nvidia-container-toolkit "$version" \
    "nvidia-container-toolkit-base (= $version), libnvidia-container-tools (>= $version), libnvidia-container-tools (<< 2.0.0)"
done

cd "$repo"
apt-ftparchive packages . > Packages
apt-ftparchive -o APT::FTPArchive::Release::Origin="difyops test mirror" release . > Release
rm -f InRelease Release.gpg
gpg --batch --yes --local-user mirror@difyops.test --clearsign -o InRelease Release
gpg --batch --yes --local-user mirror@difyops.test --armor --detach-sign -o Release.gpg Release
