#!/bin/sh
# Entry point of the redis TEST STAND-IN (see Containerfile), with the official image's rules.
set -e

# `-flag ...` or `something.conf ...`: arguments of redis-server.
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
  set -- redis-server "$@"
fi

# redis-server as root: /data (the working directory) belongs to redis, and redis runs as redis.
if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
  find . ! -user redis -exec chown redis '{}' +
  HOME=/var/lib/redis exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi

# The files redis writes are private unless a umask was chosen.
if [ "$(umask)" = 0022 ]; then
  umask 0077
fi

exec "$@"
