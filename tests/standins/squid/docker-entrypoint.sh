#!/usr/bin/env bash
# Entry point of the squid TEST STAND-IN (see Containerfile), like ubuntu/squid's: directories,
# `squid -Nz`, the log files on stdout, then squid in the foreground.
set -eo pipefail

if [[ ${1:0:1} == - ]]; then
  set -- squid "$@"
fi

if [[ $1 == squid || $1 == /usr/sbin/squid ]]; then
  shift
  conf=/etc/squid/squid.conf
  args=("$@")
  for ((i = 0; i < ${#args[@]} - 1; i++)); do
    [[ ${args[i]} != -f ]] || conf=${args[i + 1]}
  done
  # Log and spool directories for the proxy user (a bind mount may bring them root-owned).
  for dir in /var/log/squid /var/spool/squid ${COREDUMP_DIR:+"$COREDUMP_DIR"}; do
    mkdir -p "$dir"
    chown proxy:proxy "$dir"
  done
  # No squid runs yet in this container, so a PID file is stale: left by a squid that was killed
  # (docker stop's SIGKILL after its timeout, as squid waits shutdown_lifetime on SIGTERM) in this
  # container's previous run. Kept, it names PID 1, which is alive (this script), and squid would
  # refuse to start ("Squid is already running") on every restart.
  pid_file="$(awk '$1 == "pid_filename" { f = $2 } END { print f }' "$conf" 2>/dev/null || :)"
  pid_file=${pid_file:-/run/squid.pid}
  [[ $pid_file == none ]] || rm -f "$pid_file"
  # Missing cache directories; squid exits when done.
  /usr/sbin/squid -f "$conf" -Nz
  # The logs reach `docker logs`, as in the official image.
  tail -q -F /var/log/squid/access.log /var/log/squid/cache.log 2>/dev/null &
  exec /usr/sbin/squid "$@"
fi

exec "$@"
