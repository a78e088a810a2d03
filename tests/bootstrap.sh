#!/usr/bin/env bash
# Install everything the test suite needs, on a fresh Debian machine (as root, or with sudo):
# system packages for pyaudio/ALSA/Xvfb, this package with its [test] extra, and a separate
# virtualenv with the legacy official SDK (lmnt 1.1.4 cannot share an environment with lmnt 2.x).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
PACKAGES="portaudio19-dev libasound2-plugins alsa-utils xvfb pulseaudio pulseaudio-utils xdotool"
if ! dpkg -s $PACKAGES >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq $PACKAGES >/dev/null
fi
# Service tests (issue 13): nginx and a throwaway PostgreSQL cluster on loopback, openssl for TLS certs.
SERVICE_PACKAGES="nginx postgresql openssl"
if ! dpkg -s $SERVICE_PACKAGES >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $SERVICE_PACKAGES >/dev/null
fi
python -m pip install -q -e '.[test]'
if ! .venv-legacy/bin/python -c 'import lmnt.api' >/dev/null 2>&1; then
  python -m venv .venv-legacy
  .venv-legacy/bin/python -m pip install -q 'lmnt==1.1.4'
fi
