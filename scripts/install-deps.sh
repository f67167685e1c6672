#!/usr/bin/env bash
# Installs the Debian packages ballast needs to build and test, skipping those already present.
# Non-interactive; uses sudo when not root. Safe to run repeatedly.
set -euo pipefail

packages=(
  build-essential pkg-config        # C toolchain for -sys crates
  jackd2 libjack-jackd2-dev         # JACK server (dummy driver in tests) and jack.pc for jack-sys
  libasound2-dev                    # ALSA backend
  dbus                              # private dbus-daemon in tests
  ffmpeg sox                        # independent loudness meter (ebur128 filter), test audio
  wesnoth-1.16-music                # real music (Ogg, GPL-2) for end-to-end loudness tests
  python3-pip                       # fetches the onnxruntime wheel (scripts/fetch-onnxruntime.sh)
)
# systemd-analyze checks the units (daemon/tests/systemd_units.rs); containers often lack it.
command -v systemd-analyze >/dev/null 2>&1 || packages+=(systemd)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
echo "installing: ${missing[*]}"
# jackd2 otherwise asks whether to enable realtime limits.
echo "jackd2 jackd/tweak_rt_limits boolean false" | $SUDO debconf-set-selections
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
