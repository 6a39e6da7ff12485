#!/usr/bin/env bash
# Debian's espeak-ng for the voice tests (tests/integration/test_voice.py): they synthesize
# speech to send to a fake transcription server. Installed when missing.
set -euo pipefail
if command -v espeak-ng >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo -n"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends espeak-ng
espeak-ng --version
