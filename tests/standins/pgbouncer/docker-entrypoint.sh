#!/bin/sh
# Entry point of the pgbouncer stand-in: edoburu/pgbouncer's contract (see the Containerfile),
# stricter about what the collection must always give.
set -eu

CONFIG_DIR=/etc/pgbouncer
AUTH_FILE="${AUTH_FILE:-$CONFIG_DIR/userlist.txt}"

fail() {
  echo "pgbouncer stand-in: $*" >&2
  exit 1
}

for name in DB_HOST DB_USER DB_PASSWORD; do
  eval "value=\${$name:-}"
  [ -n "$value" ] || fail "$name is empty or unset; the pooler cannot reach PostgreSQL without it"
done
for name in DB_PORT LISTEN_PORT MAX_CLIENT_CONN DEFAULT_POOL_SIZE MAX_DB_CONNECTIONS; do
  eval "value=\${$name:-}"
  case "$value" in
    '') ;;
    *[!0-9]*) fail "$name must be a number, got '$value'" ;;
  esac
done

touch "$AUTH_FILE"
if ! grep -q "^\"$DB_USER\"" "$AUTH_FILE"; then
  case "${AUTH_TYPE:-md5}" in
    plain | scram-sha-256) pass="$DB_PASSWORD" ;;
    *) pass="md5$(printf '%s%s' "$DB_PASSWORD" "$DB_USER" | md5sum | cut -f 1 -d ' ')" ;;
  esac
  printf '"%s" "%s"\n' "$DB_USER" "$pass" >>"$AUTH_FILE"
  chmod 0600 "$AUTH_FILE"
  echo "Wrote authentication credentials to $AUTH_FILE"
fi

# One "name = value" line for each variable that is set, as the image's printf does.
optional() {
  eval "value=\${$2:-}"
  [ -z "$value" ] || printf '%s = %s\n' "$1" "$value"
}

if [ ! -f "$CONFIG_DIR/pgbouncer.ini" ]; then
  echo "Create pgbouncer config in $CONFIG_DIR"
  {
    echo "################## Auto generated ##################"
    echo "[databases]"
    echo "${DB_NAME:-*} = host=$DB_HOST port=${DB_PORT:-5432} auth_user=$DB_USER"
    optional client_encoding CLIENT_ENCODING
    echo
    echo "[pgbouncer]"
    echo "listen_addr = ${LISTEN_ADDR:-0.0.0.0}"
    echo "listen_port = ${LISTEN_PORT:-5432}"
    echo "unix_socket_dir = ${UNIX_SOCKET_DIR:-}"
    echo "user = postgres"
    echo "auth_file = $AUTH_FILE"
    optional auth_hba_file AUTH_HBA_FILE
    echo "auth_type = ${AUTH_TYPE:-md5}"
    optional auth_user AUTH_USER
    optional auth_query AUTH_QUERY
    optional pool_mode POOL_MODE
    optional max_client_conn MAX_CLIENT_CONN
    optional default_pool_size DEFAULT_POOL_SIZE
    optional min_pool_size MIN_POOL_SIZE
    optional reserve_pool_size RESERVE_POOL_SIZE
    optional max_db_connections MAX_DB_CONNECTIONS
    optional max_user_connections MAX_USER_CONNECTIONS
    echo "ignore_startup_parameters = ${IGNORE_STARTUP_PARAMETERS:-extra_float_digits}"
    optional max_prepared_statements MAX_PREPARED_STATEMENTS
    optional log_connections LOG_CONNECTIONS
    optional log_disconnections LOG_DISCONNECTIONS
    optional log_pooler_errors LOG_POOLER_ERRORS
    optional log_stats LOG_STATS
    optional stats_period STATS_PERIOD
    optional verbose VERBOSE
    echo "admin_users = ${ADMIN_USERS:-postgres}"
    optional stats_users STATS_USERS
    optional server_reset_query SERVER_RESET_QUERY
    optional server_idle_timeout SERVER_IDLE_TIMEOUT
    optional query_wait_timeout QUERY_WAIT_TIMEOUT
    echo "################## end file ##################"
  } >"$CONFIG_DIR/pgbouncer.ini"
  cat "$CONFIG_DIR/pgbouncer.ini"
  echo "Starting $*..."
fi

exec "$@"
