#!/usr/bin/env bash
# Debian's bubblewrap, which contains every agent a run starts (codeyard/sandbox): install it
# when `bwrap` is missing, then check that it can create a sandbox here (namespaces allowed).
set -euo pipefail
if ! command -v bwrap >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo -n"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends bubblewrap
fi
bwrap --version
if ! bwrap --ro-bind / / --proc /proc --dev /dev --unshare-pid --die-with-parent \
    --new-session --cap-drop ALL -- /bin/true; then
  echo "bubblewrap is installed but cannot create a sandbox here: enable user and pid" >&2
  echo "namespaces (sysctl kernel.unprivileged_userns_clone=1) or run as root." >&2
  exit 1
fi
