#!/usr/bin/env bash
# `make run`: ballastd with config/default.toml on a JACK server. Uses the JACK server already running
# (the default one, or $JACK_DEFAULT_SERVER), else starts a private one with the dummy driver (no sound
# card needed) and stops it again on the way out. Likewise the D-Bus session bus: the one of this
# session, else a private `dbus-daemon --session` (its address printed, for `ballastctl` in another
# terminal), stopped on the way out. Ctrl-C (or SIGTERM) stops ballastd (and what was started here) and
# exits 0.
#
# Environment: CARGO (default cargo), BALLAST_CONFIG (default config/default.toml),
# BALLASTD (the daemon binary; default target/release/ballastd, built here).
set -euo pipefail
cd "$(dirname "$0")/.."

demo_server=ballast-demo
config=${BALLAST_CONFIG:-config/default.toml}
work=${XDG_CACHE_HOME:-$HOME/.cache}/ballast/run
mkdir -p "$work"

scripts/install-deps.sh
if [ -z "${BALLASTD:-}" ]; then
  echo "building ballastd and ballastctl (release)..."
  "${CARGO:-cargo}" build --release -q -p ballastd -p ballastctl
  BALLASTD=target/release/ballastd
fi
ctl=target/release/ballastctl

# Is a JACK server answering? Never let libjack start one behind our back (it would outlive us).
jack_up() {
  JACK_NO_START_SERVER=1 timeout 5 jack_lsp >/dev/null 2>&1
}

jackd_pid=""
daemon_pid=""
bus_pid=""
stop_started() {
  if [ -n "$jackd_pid" ]; then
    kill -TERM "$jackd_pid" 2>/dev/null || true
    wait "$jackd_pid" 2>/dev/null || true
    jackd_pid=""
    echo "stopped the private JACK server \"$demo_server\""
  fi
  if [ -n "$bus_pid" ]; then
    # dbus-daemon --fork: not our child, so no wait; it exits on SIGTERM.
    kill -TERM "$bus_pid" 2>/dev/null || true
    bus_pid=""
    echo "stopped the private D-Bus session bus"
  fi
}
trap stop_started EXIT
# Until ballastd runs, Ctrl-C just ends the script (through the EXIT trap).
trap 'exit 130' INT TERM

if jack_up; then
  server=${JACK_DEFAULT_SERVER:-default}
  echo "using the running JACK server \"$server\" (left running on exit)"
elif JACK_DEFAULT_SERVER=$demo_server jack_up; then
  # A private server from an earlier run that did not get to stop it: use it, and leave it alone.
  export JACK_DEFAULT_SERVER=$demo_server
  server=$demo_server
  echo "using the running JACK server \"$server\" (left running on exit)"
else
  export JACK_DEFAULT_SERVER=$demo_server
  server=$demo_server
  echo "no JACK server running: starting a private one, \"$server\" (dummy driver, 48 kHz, 256 frames)"
  # Backgrounded by a non-interactive shell, jackd ignores the terminal's Ctrl-C; stop_jackd ends it.
  jackd -n "$server" -d dummy -r 48000 -p 256 >"$work/jackd.log" 2>&1 &
  jackd_pid=$!
  for _ in $(seq 100); do
    jack_up && break
    if ! kill -0 "$jackd_pid" 2>/dev/null; then
      wait "$jackd_pid" || true
      jackd_pid=""
      echo "jackd failed to start; its log ($work/jackd.log):" >&2
      cat "$work/jackd.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  jack_up || { echo "jackd did not answer within 10 s; log: $work/jackd.log" >&2; exit 1; }
fi

# The session bus ballastd serves org.ballast.Daemon1 on (for ballastctl). A bus that does not answer
# (none in a bare container or over ssh without a login session) is replaced by a private one.
session_bus_up() {
  timeout 5 dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
    org.freedesktop.DBus.GetId >/dev/null 2>&1
}
private_bus=0
if [ -n "${DBUS_SESSION_BUS_ADDRESS:-}${XDG_RUNTIME_DIR:-}" ] && session_bus_up; then
  echo "using this session's D-Bus session bus"
else
  bus_info=$(dbus-daemon --session --fork --print-address=1 --print-pid=1) || {
    echo "cannot start a private dbus-daemon; ballastd runs without D-Bus control" >&2
    bus_info=""
  }
  if [ -n "$bus_info" ]; then
    DBUS_SESSION_BUS_ADDRESS=$(printf '%s\n' "$bus_info" | sed -n 1p)
    bus_pid=$(printf '%s\n' "$bus_info" | sed -n 2p)
    export DBUS_SESSION_BUS_ADDRESS
    private_bus=1
    echo "no D-Bus session bus: started a private one (pid $bus_pid), stopped on exit"
  fi
fi

# ballastd runs in the background of this script so that the traps below run at once; a background job
# of a non-interactive shell ignores SIGINT, so Ctrl-C reaches ballastd as the SIGTERM sent here.
interrupted=0
signals=0
on_signal() {
  interrupted=1
  signals=$((signals + 1))
  [ -n "$daemon_pid" ] && kill -TERM "$daemon_pid" 2>/dev/null || true
}
trap on_signal INT TERM

echo "\$ $BALLASTD --config $config"
"$BALLASTD" --config "$config" &
daemon_pid=$!

# Say what to try once its ports are there (or after 10 s, or at once if it stopped).
client=$(sed -n 's/^client_name *= *"\([^"]*\)".*/\1/p' "$config" | head -n 1)
client=${client:-ballast}
for _ in $(seq 100); do
  kill -0 "$daemon_pid" 2>/dev/null || break
  JACK_NO_START_SERVER=1 timeout 5 jack_lsp 2>/dev/null | grep -q "^$client:" && break
  sleep 0.1
done
if kill -0 "$daemon_pid" 2>/dev/null; then
  echo
  echo "ballastd is running (pid $daemon_pid) on JACK server \"$server\". Ctrl-C stops it."
  if [ "$server" = "$demo_server" ] || [ "$private_bus" -eq 1 ]; then
    echo "In another terminal, first:"
    [ "$server" = "$demo_server" ] && echo "  export JACK_DEFAULT_SERVER=$demo_server"
    [ "$private_bus" -eq 1 ] && echo "  export DBUS_SESSION_BUS_ADDRESS='$DBUS_SESSION_BUS_ADDRESS'"
    echo "then try:"
  else
    echo "Try, in another terminal:"
  fi
  cat <<MSG
  $ctl status                        # backend, block size, latency, DSP load, xruns
  $ctl nodes                         # the graph; then: $ctl params limit
  $ctl set limit.ceiling_dbtp -3dB   # a change, in effect on the next JACK cycle
  $ctl meters --watch                # live loudness and gain reduction (Ctrl-C ends it)
  $ctl events                        # changes made by any client, as they happen
  jack_lsp -c                                      # its ports and connections
  jack_connect $client:out_l system:playback_1       # listen (the dummy server's playback goes nowhere)
  jack_rec -f /tmp/ballast-live.wav -d 10 $client:out_l $client:out_r
  $ctl measure /tmp/ballast-live.wav   # loudness of what it played (about -23 LUFS)
  kill -HUP $daemon_pid                                   # reload $config after editing it
  $BALLASTD check --config config/broadcast.toml
  $BALLASTD render --config $config --duration 10 --output /tmp/ballast.wav
  make demo                                        # offline: render the default config and measure it

MSG
fi

# A trapped signal interrupts `wait` (status > 128) before ballastd has finished: wait again until a
# wait returns without a signal in between (bash keeps a finished job's status for that wait).
while :; do
  signals_before=$signals
  status=0
  wait "$daemon_pid" || status=$?
  [ "$signals" -eq "$signals_before" ] && break
done
daemon_pid=""
if [ "$interrupted" -eq 1 ] && { [ "$status" -eq 0 ] || [ "$status" -eq 143 ]; }; then
  echo "ballastd stopped"
  exit 0
fi
exit "$status"
