#!/usr/bin/env bash
# Make the Debian base image offline: debootstrap from the host's configured Debian
# mirror, then `docker import` it under the tag the Dockerfile expects. Used only when
# that tag can neither be found locally nor pulled from a registry.
set -euo pipefail

TAG="${1:-debian:bookworm-slim}"
SUITE="${SUITE:-bookworm}"
log() { printf '[make-base] %s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || { log "debootstrap needs root"; exit 2; }
if ! command -v debootstrap >/dev/null 2>&1; then
    log "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

# The host's own mirror (deb822 sources first, then the classic list), else Debian's.
MIRROR="${DEBIAN_MIRROR:-}"
if [ -z "$MIRROR" ]; then
    MIRROR="$(grep -hoE '^URIs:[[:space:]]*\S+' /etc/apt/sources.list.d/*.sources 2>/dev/null \
              | awk '{print $2}' | grep -v security | head -n1 || true)"
fi
if [ -z "$MIRROR" ]; then
    MIRROR="$(grep -hoE '^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?\S+' /etc/apt/sources.list 2>/dev/null \
              | awk '{print $NF}' | grep -v security | head -n1 || true)"
fi
MIRROR="${MIRROR:-http://deb.debian.org/debian}"

ROOTFS="$(mktemp -d /tmp/hermes-lab-rootfs.XXXXXX)"
trap 'rm -rf "$ROOTFS"' EXIT
log "debootstrap $SUITE from $MIRROR (variant minbase)"
debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$MIRROR" >/tmp/hermes-lab-debootstrap.log 2>&1 \
    || { log "debootstrap failed; see /tmp/hermes-lab-debootstrap.log"; exit 3; }
# Keep the image small, as the official slim image does.
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
log "importing as $TAG"
tar -C "$ROOTFS" -c . | docker import \
    --change 'CMD ["bash"]' \
    --change 'LABEL org.hermes-lab.base=debootstrap' \
    - "$TAG" >/dev/null
log "done: $TAG"
