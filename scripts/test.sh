#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need where
# it is missing, then runs `cargo test --workspace --all-features`.
#
#   scripts/test.sh [ARGS...]      ARGS go to cargo test (e.g. -- --nocapture)
#
# The tests need three programs beside the Rust toolchain:
#   redis-server              the server's tests run both stores; the Redis ones
#                             start a real redis-server on a free loopback port
#   chromium + chromedriver   server/tests/checkout_browser.rs drives the checkout
#                             page; tests/card_svg.rs screenshots the SVG card
#   zbarimg (zbar-tools)      tests/scan.rs's independent QR decoder
# Where one is missing, this script installs it with apt-get (as root, or
# through sudo). Without apt-get it names what to install and exits non-zero:
# nothing is skipped silently, and no test is left to fail on a missing tool.
# KHQR_CHROMIUM / KHQR_CHROMEDRIVER, when set, name the browser and driver to
# use instead of the ones on PATH (the tests read the same variables).
set -euo pipefail
cd "$(dirname "$0")/.."

have() { command -v "$1" >/dev/null 2>&1 || [ -x "$1" ]; }

packages=()
have redis-server || packages+=(redis-server)
have "${KHQR_CHROMIUM:-chromium}" || packages+=(chromium)
have "${KHQR_CHROMEDRIVER:-chromedriver}" || packages+=(chromium-driver)
have zbarimg || packages+=(zbar-tools)

if ((${#packages[@]})); then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "scripts/test.sh: missing ${packages[*]} (Debian/Ubuntu package names): install redis-server, chromium with its chromedriver, and zbar's zbarimg, then run again" >&2
    exit 1
  fi
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "scripts/test.sh: missing ${packages[*]}; run as root or install sudo, or: apt-get install ${packages[*]}" >&2
      exit 1
    fi
    sudo_cmd=(sudo)
  fi
  echo "scripts/test.sh: installing ${packages[*]} with apt-get" >&2
  "${sudo_cmd[@]}" apt-get update -qq
  # As CI always did: chromium with its recommended packages (fonts), the
  # others without.
  for package in "${packages[@]}"; do
    recommends=(--no-install-recommends)
    [[ $package == chromium* ]] && recommends=()
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${recommends[@]}" "$package" >/dev/null
  done
  for tool in redis-server "${KHQR_CHROMIUM:-chromium}" "${KHQR_CHROMEDRIVER:-chromedriver}" zbarimg; do
    have "$tool" || { echo "scripts/test.sh: $tool is still missing after apt-get install" >&2; exit 1; }
  done
fi

exec cargo test --workspace --all-features "$@"
