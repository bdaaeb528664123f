#!/usr/bin/env bash
# Install podman (Debian 12 packages) and serve its Docker-compatible API for the image build and its tests.
#
# CI machines have no Docker engine and cannot pull base images from the internet; podman from Debian works
# as root once it is told to use runc. The docker SDK then drives it through `podman system service`,
# exactly as it would drive a Docker engine.
#
# Idempotent: re-running skips what is already installed or serving. Prints the DOCKER_HOST to use last.
#
# Usage: .ci/install-podman.sh [--registry]
#   --registry   also serve a throwaway local registry (Debian's docker-registry) on 127.0.0.1:5000,
#                used by the push test; images pushed there are lost when the machine goes.
set -euo pipefail

SOCKET_DIR=/run/cicd-podman
SOCKET="${SOCKET_DIR}/podman.sock"
DOCKER_HOST_URL="unix://${SOCKET}"
REGISTRY_ADDR=127.0.0.1:5000
REGISTRY_DIR=/var/lib/cicd-registry
WITH_REGISTRY=0

for arg in "$@"; do
  case "${arg}" in
    --registry) WITH_REGISTRY=1 ;;
    -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "install-podman.sh: unknown argument '${arg}' (known: --registry)" >&2; exit 2 ;;
  esac
done

if [[ "$(id -u)" != 0 ]]; then
  echo "install-podman.sh: run as root (or with sudo): rootless podman needs subuid setup this script skips." >&2
  exit 1
fi

log() { echo "install-podman.sh: $*" >&2; }

# --- packages ------------------------------------------------------------------------------------------
# --no-install-recommends keeps the install quick: as root on a plain filesystem podman needs neither
# fuse-overlayfs nor slirp4netns (both are for rootless mode), and buildah's library is built into podman.
packages=(podman runc curl)
if [[ "${WITH_REGISTRY}" == 1 ]]; then
  packages+=(docker-registry)
fi
missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "${pkg}" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("${pkg}")
  fi
done
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Package postinst scripts try to start services (docker-registry's systemd unit); CI machines and
  # containers often have no init system, and we start what we need ourselves below.
  policy_rc=/usr/sbin/policy-rc.d
  created_policy=0
  if [[ ! -e "${policy_rc}" ]]; then
    printf '#!/bin/sh\nexit 101\n' >"${policy_rc}"
    chmod +x "${policy_rc}"
    created_policy=1
  fi
  # A fresh machine has empty package lists; refresh only then, since an update costs seconds each time.
  if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/cicd-apt-install.log 2>&1; then
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/cicd-apt-install.log 2>&1 || {
      tail -n 30 /tmp/cicd-apt-install.log >&2
      exit 1
    }
  fi
  if [[ "${created_policy}" == 1 ]]; then
    rm -f "${policy_rc}"
  fi
fi

# --- configuration -------------------------------------------------------------------------------------
# Found on these CI machines: `podman run` fails with the packaged defaults and works with runc plus
# explicit ulimits (podman otherwise copies the host's limits, which the container may not be allowed to set).
conf=/etc/containers/containers.conf
mkdir -p "$(dirname "${conf}")"
desired_conf='# Written by .ci/install-podman.sh (CI setup of this repository); re-running it rewrites this file.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]

[engine]
runtime = "runc"'
if [[ ! -f "${conf}" ]] || [[ "$(cat "${conf}")" != "${desired_conf}" ]]; then
  if [[ -f "${conf}" ]] && ! grep -q "install-podman.sh" "${conf}"; then
    cp "${conf}" "${conf}.bak"
    log "kept the previous ${conf} as ${conf}.bak"
  fi
  printf '%s\n' "${desired_conf}" >"${conf}"
fi

if [[ "${WITH_REGISTRY}" == 1 ]]; then
  # podman pushes to plain-HTTP registries only when told so, even on 127.0.0.1. Written before the
  # service starts, which reads it once.
  reg_conf=/etc/containers/registries.conf.d/50-cicd-local.conf
  mkdir -p "$(dirname "${reg_conf}")"
  printf '[[registry]]\nlocation = "%s"\ninsecure = true\n' "${REGISTRY_ADDR}" >"${reg_conf}"
fi

# --- API service ---------------------------------------------------------------------------------------
answers() { curl -sf --max-time 2 --unix-socket "${SOCKET}" http://d/_ping >/dev/null 2>&1; }

if answers; then
  log "podman API already serving on ${SOCKET}"
else
  mkdir -p "${SOCKET_DIR}"
  rm -f "${SOCKET}"
  # BUILDAH_ISOLATION=chroot: builds through the API then run RUN steps without a nested OCI runtime,
  # which is what works on CI machines that are themselves containers or small VMs.
  BUILDAH_ISOLATION=chroot nohup podman system service --time=0 "${DOCKER_HOST_URL}" \
    >/var/log/cicd-podman-service.log 2>&1 &
  for _ in $(seq 1 100); do
    answers && break
    sleep 0.1
  done
  if ! answers; then
    tail -n 20 /var/log/cicd-podman-service.log >&2
    log "podman system service did not answer on ${SOCKET} within 10 s (log above)."
    exit 1
  fi
  log "podman API serving on ${SOCKET}"
fi

# --- local registry (optional) -------------------------------------------------------------------------
if [[ "${WITH_REGISTRY}" == 1 ]]; then
  if curl -sf --max-time 2 "http://${REGISTRY_ADDR}/v2/" >/dev/null; then
    log "registry already serving on ${REGISTRY_ADDR}"
  else
    mkdir -p "${REGISTRY_DIR}"
    cat >"${REGISTRY_DIR}/config.yml" <<YAML
version: 0.1
storage:
  filesystem:
    rootdirectory: ${REGISTRY_DIR}/data
http:
  addr: ${REGISTRY_ADDR}
YAML
    nohup docker-registry serve "${REGISTRY_DIR}/config.yml" >/var/log/cicd-registry.log 2>&1 &
    for _ in $(seq 1 50); do
      curl -sf --max-time 1 "http://${REGISTRY_ADDR}/v2/" >/dev/null && break
      sleep 0.1
    done
    if ! curl -sf --max-time 2 "http://${REGISTRY_ADDR}/v2/" >/dev/null; then
      tail -n 20 /var/log/cicd-registry.log >&2
      log "the local registry did not answer on ${REGISTRY_ADDR} (log above)."
      exit 1
    fi
    log "registry serving on ${REGISTRY_ADDR}"
  fi
fi

echo "export DOCKER_HOST=${DOCKER_HOST_URL}"
