#!/usr/bin/env bash
# System packages the test suite needs: Debian's headless chromium and its driver, for the browser tests
# (pytest -m browser drives the map page in a real browser). Installs them with apt-get where they are missing;
# nothing to do where both are on PATH. README command 2 runs this first; so does CI, through that line.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "the browser tests need chromium and chromedriver on PATH; this script installs them with apt-get (Debian/Ubuntu)," >&2
  echo "which this machine does not have: install them with your package manager, or run pytest -m 'not browser'" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing Debian's chromium and chromium-driver for the browser tests (apt-get)" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
command -v chromium >/dev/null && command -v chromedriver >/dev/null
