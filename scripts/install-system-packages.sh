#!/usr/bin/env bash
# The system packages scopeline's tests use that pip cannot install: Debian's chromium (the
# browser the UI tests drive with playwright; Playwright's own browser download is not used).
# Installs with apt-get when missing (as root, or through passwordless sudo). Best effort:
# when it cannot install, it says so in one line and exits 0; the browser tests then skip.
set -uo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "scopeline: no apt-get here: install chromium by hand for the browser tests (they are skipped without it)" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "scopeline: not root and no passwordless sudo: run 'sudo apt-get install chromium' for the browser tests (skipped without it)" >&2
    exit 0
  fi
fi
export DEBIAN_FRONTEND=noninteractive
if ! { $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
       || { $SUDO apt-get update -qq >/dev/null 2>&1 && $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; }; }; then
  echo "scopeline: apt-get could not install chromium: the browser tests will be skipped" >&2
fi
[ -x /usr/bin/chromium ] && echo "scopeline: installed chromium for the browser tests" >&2
exit 0
