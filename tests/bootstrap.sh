#!/usr/bin/env bash
# Set up this clone on a fresh Debian machine (as root, or with sudo). Debian has no `python`
# command and its pip refuses to install into the system (PEP 668), so everything goes into a
# virtual environment, .venv, with this package installed editable:
#   bash tests/bootstrap.sh          everything the tests need: system packages for
#                                    pyaudio/ALSA/Xvfb, the [test] extra, and .venv-legacy with
#                                    the legacy official SDK (lmnt 1.1.4 cannot share an
#                                    environment with lmnt 2.x); then: .venv/bin/python -m pytest
#   bash tests/bootstrap.sh server   only the [server] extra (README's first command)
# Idempotent and quiet: run it again after pulling.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRA="${1:-test}"
case "$EXTRA" in
  test|server) ;;
  *) echo "usage: bash tests/bootstrap.sh [server]" >&2; exit 2 ;;
esac
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo

apt_install() {  # install those of the given Debian packages that are missing
  local missing=() package
  for package in "$@"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  done
  [ "${#missing[@]}" = 0 ] && return 0
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
}

new_venv() {  # new_venv DIR [OPTION]: create a working virtual environment there unless one is
  if ! "$1/bin/python" -m pip --version >/dev/null 2>&1; then
    rm -rf "$1"
    python3 -m venv ${2:+"$2"} "$1"
  fi
}

# python3 with its venv module: stock Debian ships ensurepip separately, in python3-venv.
command -v python3 >/dev/null || apt_install python3
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || apt_install python3-venv
if [ "$EXTRA" = test ]; then
  apt_install portaudio19-dev libasound2-plugins alsa-utils xvfb pulseaudio pulseaudio-utils xdotool \
    build-essential python3-dev
fi
# System site packages are visible, never installed into: what the machine has is reused.
new_venv .venv --system-site-packages
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$EXTRA]"
if [ "$EXTRA" = test ] && ! .venv-legacy/bin/python -c 'import lmnt.api' >/dev/null 2>&1; then
  new_venv .venv-legacy
  .venv-legacy/bin/python -m pip install -q --disable-pip-version-check 'lmnt==1.1.4'
fi
if [ "$EXTRA" = test ]; then
  # Service tests (issue 13): nginx and a throwaway PostgreSQL cluster on loopback, openssl for TLS certs.
  apt_install nginx postgresql openssl
  # Browser tests (tests/test_browser_player.py): Debian's Chromium, driven headless by npm's
  # playwright-core (pinned by tests/browser/package-lock.json; it downloads no browser).
  # The Qt sample test: the libraries PySide6's offscreen platform loads.
  apt_install chromium libegl1 libgl1 libxkbcommon0 libfontconfig1 libdbus-1-3
  command -v npm >/dev/null || apt_install nodejs npm
  if [ ! -d tests/browser/node_modules/playwright-core ]; then
    (cd tests/browser && npm ci --silent --no-audit --no-fund)
  fi
  bash tests/bootstrap_clients.sh  # third-party LMNT clients for tests/test_clients_*.py
fi
