#!/usr/bin/env bash
# Builds authgate's runtime image with podman, FROM scratch: stages a root
# filesystem holding the binary, its loader and libraries (found with ldd on
# this host), the CA bundle and a few files in /etc, then `podman build`.
#   deploy/container/build.sh [release|debug] [tag]
# The default tag is $AUTHGATE_IMAGE:VERSION, with AUTHGATE_IMAGE
# registry.example.com/authgate: what deploy/kubernetes names (checked by
# tests/kubernetes/run.sh). Set AUTHGATE_IMAGE to your registry's name.
set -euo pipefail
cd "$(dirname "$0")/../.."
profile=${1:-release}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
tag=${2:-${AUTHGATE_IMAGE:-registry.example.com/authgate}:$version}
flag=""; [ "$profile" = release ] && flag=--release
cargo build $flag --quiet --bin authgate
binary=target/$profile/authgate

context=target/image
root=$context/rootfs
rm -rf "$context" && mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs"
cp deploy/container/Containerfile "$context/"
cp "$binary" "$root/usr/local/bin/authgate"
# Debug sections are not needed to run; a missing strip leaves them.
strip --strip-debug "$root/usr/local/bin/authgate" 2>/dev/null || true
# The dynamic loader and every library the binary links, as this host has them.
for lib in $(ldd "$binary" | grep -o '/[^ ]*'); do
  cp --parents -L "$lib" "$root/"
done
bundle=/etc/ssl/certs/ca-certificates.crt
[ -s "$bundle" ] || { echo "no CA bundle at $bundle (Debian: apt-get install ca-certificates)"; exit 1; }
cp "$bundle" "$root/etc/ssl/certs/"
printf 'root:x:0:0:root:/:/nonexistent\nauthgate:x:65532:65532:authgate:/:/nonexistent\n' >"$root/etc/passwd"
printf 'root:x:0:\nauthgate:x:65532:\n' >"$root/etc/group"
printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
printf '127.0.0.1 localhost\n::1 localhost\n' >"$root/etc/hosts"
podman build --quiet -t "$tag" "$context" >/dev/null
echo "built $tag ($(du -sh "$root" | cut -f1) root filesystem: $(cd "$root" && find . -type f | sort | tr '\n' ' '))"
