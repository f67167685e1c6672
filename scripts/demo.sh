#!/usr/bin/env bash
# `make run` until the real-time daemon lands: render the default config offline, measure it and a real
# music track, then say what to try next.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=target/release/ballastctl
daemon=target/release/ballastd
music_dir=/usr/share/games/wesnoth/1.16/data/core/music
track=$(ls "$music_dir"/*.ogg 2>/dev/null | head -n 1 || true)
work=${XDG_CACHE_HOME:-$HOME/.cache}/ballast/demo
mkdir -p "$work"

echo "ballast: the real-time daemon (JACK/ALSA) is not built yet; the engine runs offline today."
echo
echo "\$ ballastd render --config config/default.toml --duration 10 --output $work/default.wav"
"$daemon" render --config config/default.toml --duration 10 --output "$work/default.wav"
echo "\$ ballastctl measure $work/default.wav"
"$bin" measure "$work/default.wav"
if [ -n "$track" ]; then
  wav="$work/$(basename "${track%.ogg}").wav"
  [ -s "$wav" ] || ffmpeg -v error -y -i "$track" -ar 48000 -ac 2 "$wav"
  echo
  echo "\$ ballastctl measure $wav"
  "$bin" measure "$wav"
  echo
  echo "Independent check with ffmpeg's EBU R128 meter:"
  ffmpeg -nostats -hide_banner -i "$wav" -af ebur128=peak=true -f null - 2>&1 | sed -n '/Summary:/,$p'
fi
cat <<MSG

Try next:
  $daemon check --config config/broadcast.toml
  $daemon render --config config/broadcast.toml --input IN.wav --output OUT.wav --compensate-latency
  $bin measure FILE.wav [--json]    loudness of any WAV (16/24/32-bit int, 32/64-bit float, 1-8 ch)
  $bin --help, $daemon --help, config/README.md (every config key)
  make test                         the whole test suite (EBU Tech 3341/3342 cases, RT-safety, ...)
  make bench                        criterion benchmarks of every DSP node
MSG
