#!/usr/bin/env bash
# Install the third-party LMNT clients that tests/test_clients_*.py drive against the server.
# Each Python client gets its own virtualenv: they pin other lmnt versions (1.2.0 and 2.5.1
# are the legacy and current SDKs with convert) or pull whole agent frameworks. lmnt-node goes
# under tests/node from its committed package-lock.json. Idempotent: a working one is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
client_venv() {  # client_venv DIR PROBE PACKAGE...
  local dir=$1 probe=$2
  shift 2
  if ! "$dir/bin/python" -c "$probe" >/dev/null 2>&1; then
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/python" -m pip install -q "$@"
  fi
}
client_venv .venv-legacy12 "import lmnt.api, importlib.metadata as m; assert m.version('lmnt') == '1.2.0'" 'lmnt==1.2.0'
client_venv .venv-lmnt25 "import lmnt; assert lmnt.__version__ == '2.5.1'" 'lmnt==2.5.1'
client_venv .venv-videosdk "import videosdk.plugins.lmnt" 'videosdk-plugins-lmnt==1.0.30'
client_venv .venv-livekit "import livekit.plugins.lmnt" 'livekit-plugins-lmnt==1.8.9'
client_venv .venv-genblaze "import genblaze_lmnt" 'genblaze-lmnt==0.3.3'
if ! command -v npm >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq nodejs npm >/dev/null
fi
if ! node -e "process.exit(require('./tests/node/node_modules/lmnt-node/package.json').version === '2.12.0' ? 0 : 1)" >/dev/null 2>&1; then
  npm ci --prefix tests/node --no-audit --no-fund --silent
fi
