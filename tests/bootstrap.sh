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
python -m pip install -q -e '.[test]'
if ! .venv-legacy/bin/python -c 'import lmnt.api' >/dev/null 2>&1; then
  python -m venv .venv-legacy
  .venv-legacy/bin/python -m pip install -q 'lmnt==1.1.4'
fi
# Browser tests (tests/test_browser_player.py): Debian's Chromium, driven headless by npm's
# playwright-core (pinned by tests/browser/package-lock.json; it downloads no browser).
# The Qt sample test: the libraries PySide6's offscreen platform loads.
UI_PACKAGES="chromium libegl1 libgl1 libxkbcommon0 libfontconfig1 libdbus-1-3"
command -v npm >/dev/null || UI_PACKAGES="$UI_PACKAGES nodejs npm"
if ! dpkg -s $UI_PACKAGES >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq $UI_PACKAGES >/dev/null
fi
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  (cd tests/browser && npm ci --silent --no-audit --no-fund)
fi
