#!/usr/bin/env bash
# Install piper-tts' [http] extra (Flask) for bench/piper_http_compare.py, at the piper-tts version
# already installed (the server extra of this package brings piper-tts itself). Idempotent, quiet.
set -euo pipefail
PY="${PYTHON:-python}"
if ! "$PY" -c 'import flask, piper.http_server' >/dev/null 2>&1; then
  VERSION="$("$PY" -c 'from importlib.metadata import version; print(version("piper-tts"))')"
  "$PY" -m pip install -q "piper-tts[http]==${VERSION}"
fi
