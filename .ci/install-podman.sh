#!/usr/bin/env bash
# Install podman (Debian 12 packages) and serve its Docker-compatible API for the image build and its tests.
#
# CI machines have no Docker engine and cannot pull base images from the internet; podman from Debian works
# as root once it is told to use runc. The docker SDK then drives it through `podman system service`,
# exactly as it would drive a Docker engine.
#
# Idempotent: re-running skips what is already installed or serving. Prints the DOCKER_HOST to use last.
#
# Usage: .ci/install-podman.sh [--registry] [--auth-registry]
#   --registry        also serve a throwaway local registry (Debian's docker-registry) on 127.0.0.1:5000,
#                     used by the push test; images pushed there are lost when the machine goes.
#   --auth-registry   --registry, plus a second throwaway registry on 127.0.0.1:5001 that refuses anyone
#                     without a login (htpasswd), so the image tests prove a push sends its own credentials.
set -euo pipefail

SOCKET_DIR=/run/cicd-podman
SOCKET="${SOCKET_DIR}/podman.sock"
PID_FILE="${SOCKET_DIR}/podman.pid"
DOCKER_HOST_URL="unix://${SOCKET}"
REGISTRY_ADDR=127.0.0.1:5000
REGISTRY_DIR=/var/lib/cicd-registry
AUTH_REGISTRY_ADDR=127.0.0.1:5001
AUTH_REGISTRY_DIR=/var/lib/cicd-registry-auth
# A test constant, not a secret: it guards a throwaway registry on loopback, and the image tests log in with
# it. The user is the one Artifact Registry takes an access token for, so tests push as they would there.
AUTH_REGISTRY_USER=oauth2accesstoken
AUTH_REGISTRY_PASSWORD=cicd-test-access-token
WITH_REGISTRY=0
WITH_AUTH_REGISTRY=0

for arg in "$@"; do
  case "${arg}" in
    --registry) WITH_REGISTRY=1 ;;
    --auth-registry) WITH_REGISTRY=1 WITH_AUTH_REGISTRY=1 ;;
    -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "install-podman.sh: unknown argument '${arg}' (known: --registry, --auth-registry)" >&2; exit 2 ;;
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
if [[ "${WITH_AUTH_REGISTRY}" == 1 ]]; then
  packages+=(apache2-utils) # htpasswd, for the registry's bcrypt login file
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

reg_conf=/etc/containers/registries.conf.d/50-cicd-local.conf
if [[ "${WITH_REGISTRY}" == 1 ]]; then
  # podman pushes to plain-HTTP registries only when told so, even on 127.0.0.1. Written before the
  # service starts, which reads it once: so both local registries are named whichever option asked, and
  # the service a `--registry` run starts can push to the one `--auth-registry` adds later. Rewritten only
  # on a change, since its modification time tells whether a running service has read it (below).
  desired_reg_conf=$(printf '[[registry]]\nlocation = "%s"\ninsecure = true\n\n' \
    "${REGISTRY_ADDR}" "${AUTH_REGISTRY_ADDR}")
  if [[ ! -f "${reg_conf}" ]] || [[ "$(cat "${reg_conf}")" != "${desired_reg_conf}" ]]; then
    mkdir -p "$(dirname "${reg_conf}")"
    printf '%s\n' "${desired_reg_conf}" >"${reg_conf}"
  fi
fi

# --- API service ---------------------------------------------------------------------------------------
answers() { curl -sf --max-time 2 --unix-socket "${SOCKET}" http://d/_ping >/dev/null 2>&1; }

# A service started before registries.conf changed still pushes to the new local registries over HTTPS
# ("server gave HTTP response to HTTPS client"). Restart one this script started (its pid is on record);
# tell the user about any other, since stopping it may break builds that someone else is running.
if [[ "${WITH_REGISTRY}" == 1 ]] && answers && [[ "${reg_conf}" -nt "${SOCKET}" ]]; then
  pid=$(cat "${PID_FILE}" 2>/dev/null || true)
  if [[ -n "${pid}" ]] && [[ "$(ps -o comm= -p "${pid}" 2>/dev/null)" == podman ]]; then
    log "restarting the podman API (pid ${pid}): it started before ${reg_conf} changed"
    kill "${pid}"
    for _ in $(seq 1 100); do
      kill -0 "${pid}" 2>/dev/null || break
      sleep 0.1
    done
  else
    stale="the podman API on ${SOCKET} started before ${reg_conf} changed, so it cannot push to \
${AUTH_REGISTRY_ADDR}: stop that \`podman system service\` and run this script again."
    if [[ "${WITH_AUTH_REGISTRY}" == 1 ]]; then
      log "${stale}"
      exit 1
    fi
    log "warning: ${stale}"
  fi
fi

if answers; then
  log "podman API already serving on ${SOCKET}"
else
  mkdir -p "${SOCKET_DIR}"
  rm -f "${SOCKET}"
  # BUILDAH_ISOLATION=chroot: builds through the API then run RUN steps without a nested OCI runtime,
  # which is what works on CI machines that are themselves containers or small VMs. Started in /: it
  # outlives the checkout that started it, and with its working folder deleted every container start
  # failed ("write child: broken pipe"). exec: the pid on record is podman's own.
  (cd / && BUILDAH_ISOLATION=chroot exec nohup podman system service --time=0 "${DOCKER_HOST_URL}" \
    >/var/log/cicd-podman-service.log 2>&1) &
  echo "$!" >"${PID_FILE}"
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

# --- local registries (optional) -----------------------------------------------------------------------
# registry_answers ADDR [CURL_ARGS...]: whether the registry on ADDR answers its API root, given CURL_ARGS
# (a login). One that requires a login answers 401 without it, which counts as not answering.
registry_answers() {
  local addr=$1
  shift
  curl -sf --max-time 2 "$@" "http://${addr}/v2/" >/dev/null 2>&1
}

# start_registry CONFIG LOG ADDR [CURL_ARGS...]: serve Debian's docker-registry with CONFIG and wait until
# ADDR answers (given CURL_ARGS); fail with the end of LOG if it does not.
start_registry() {
  local config=$1 logfile=$2 addr=$3
  shift 3
  nohup docker-registry serve "${config}" >"${logfile}" 2>&1 &
  for _ in $(seq 1 50); do
    registry_answers "${addr}" "$@" && break
    sleep 0.1
  done
  if ! registry_answers "${addr}" "$@"; then
    tail -n 20 "${logfile}" >&2
    log "the local registry did not answer on ${addr} (log above)."
    exit 1
  fi
  log "registry serving on ${addr}"
}

if [[ "${WITH_REGISTRY}" == 1 ]]; then
  if registry_answers "${REGISTRY_ADDR}"; then
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
    start_registry "${REGISTRY_DIR}/config.yml" /var/log/cicd-registry.log "${REGISTRY_ADDR}"
  fi
fi

if [[ "${WITH_AUTH_REGISTRY}" == 1 ]]; then
  login=(--user "${AUTH_REGISTRY_USER}:${AUTH_REGISTRY_PASSWORD}")
  if registry_answers "${AUTH_REGISTRY_ADDR}" "${login[@]}"; then
    log "registry already serving on ${AUTH_REGISTRY_ADDR} (login required)"
  else
    mkdir -p "${AUTH_REGISTRY_DIR}"
    # distribution takes bcrypt entries only (-B). Salts differ on every run, so the file is rewritten only
    # when it does not already hold the test login.
    htpasswd_file="${AUTH_REGISTRY_DIR}/htpasswd"
    if ! htpasswd -vb "${htpasswd_file}" "${AUTH_REGISTRY_USER}" "${AUTH_REGISTRY_PASSWORD}" 2>/dev/null; then
      htpasswd -Bbn "${AUTH_REGISTRY_USER}" "${AUTH_REGISTRY_PASSWORD}" >"${htpasswd_file}"
    fi
    cat >"${AUTH_REGISTRY_DIR}/config.yml" <<YAML
version: 0.1
storage:
  filesystem:
    rootdirectory: ${AUTH_REGISTRY_DIR}/data
http:
  addr: ${AUTH_REGISTRY_ADDR}
auth:
  htpasswd:
    realm: cicd-test-registry
    path: ${htpasswd_file}
YAML
    start_registry "${AUTH_REGISTRY_DIR}/config.yml" /var/log/cicd-registry-auth.log "${AUTH_REGISTRY_ADDR}" \
      "${login[@]}"
  fi
fi

echo "export DOCKER_HOST=${DOCKER_HOST_URL}"
