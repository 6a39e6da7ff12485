#!/usr/bin/env bash
# Debian's speech synthesizers for the voice tests, installed when missing: espeak-ng
# (tests/integration/test_voice.py, speech for a fake transcription server) and flite
# (tests/integration/test_voice_local.py, speech for the local engine: PocketSphinx recognizes
# flite's CMU voices, while espeak-ng's formant voice comes back as other words).
set -euo pipefail
if command -v espeak-ng >/dev/null 2>&1 && command -v flite >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo -n"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends espeak-ng flite
espeak-ng --version
# flite prints its version and exits 1 even so: check that it runs, not its exit code.
flite --version || command -v flite >/dev/null
