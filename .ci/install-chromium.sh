#!/usr/bin/env bash
# Install Debian's chromium, the browser the HTML run report's test opens the report in (headless).
#
# CI machines reach Debian's packages but no browser download site: playwright drives this browser
# (executable_path=/usr/bin/chromium) and never downloads one of its own.
#
# Idempotent and quiet: re-running does nothing once chromium is installed. Prints the browser's path last.
#
# Usage: .ci/install-chromium.sh   (as root)
set -euo pipefail

BROWSER=/usr/bin/chromium

log() { echo "install-chromium.sh: $*" >&2; }

if [[ -x "${BROWSER}" ]]; then
  echo "${BROWSER}"
  exit 0
fi
if [[ "$(id -u)" != 0 ]]; then
  log "run as root (or with sudo): it installs Debian's chromium package."
  exit 1
fi
log "installing chromium"
export DEBIAN_FRONTEND=noninteractive
# fonts-liberation: a page's text renders in a real font, as a person would see it.
packages=(chromium fonts-liberation)
# A fresh machine has empty package lists; refresh only then, since an update costs seconds each time.
if ! apt-get install -y -q --no-install-recommends "${packages[@]}" >/tmp/cicd-apt-chromium.log 2>&1; then
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${packages[@]}" >/tmp/cicd-apt-chromium.log 2>&1 || {
    tail -n 30 /tmp/cicd-apt-chromium.log >&2
    exit 1
  }
fi
if [[ ! -x "${BROWSER}" ]]; then
  log "chromium installed but ${BROWSER} is missing (see /tmp/cicd-apt-chromium.log)."
  exit 1
fi
echo "${BROWSER}"
