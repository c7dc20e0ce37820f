#!/usr/bin/env bash
# Entry point of the postgres TEST STAND-IN (see Containerfile): the official postgres image's
# contract, written for Debian's PostgreSQL packages.
#   postgres [ARGS]  or  -ARG ...  initialise PGDATA when it holds no cluster, then run the
#                                  server as the postgres user;
#   anything else                  run as given.
set -Eeo pipefail

# VAR from $VAR or from the file named by $VAR_FILE (Docker secrets), else DEFAULT.
file_env() {
  local var=$1 file_var="${1}_FILE" default=${2:-}
  if [[ -n ${!var:-} && -n ${!file_var:-} ]]; then
    printf 'error: both %s and %s are set (but are exclusive)\n' "$var" "$file_var" >&2
    exit 1
  fi
  local value=$default
  if [[ -n ${!var:-} ]]; then
    value=${!var}
  elif [[ -n ${!file_var:-} ]]; then
    value="$(<"${!file_var}")"
  fi
  export "$var"="$value"
  unset "$file_var"
}

setup_env() {
  : "${PGDATA:=/var/lib/postgresql/data}"
  export PGDATA
  file_env POSTGRES_PASSWORD
  file_env POSTGRES_USER postgres
  file_env POSTGRES_DB "$POSTGRES_USER"
  file_env POSTGRES_INITDB_ARGS
  : "${POSTGRES_HOST_AUTH_METHOD:=}"
  DATABASE_ALREADY_EXISTS=
  if [[ -s $PGDATA/PG_VERSION ]]; then
    DATABASE_ALREADY_EXISTS=true
  fi
}

# PGDATA, the socket directory and the WAL directory exist, with the postgres user's ownership
# when we are root (the bind-mounted parent may be a fresh root-owned directory).
create_directories() {
  mkdir -p "$PGDATA"
  chmod 0700 "$PGDATA" || :
  mkdir -p /var/run/postgresql || :
  chmod 3775 /var/run/postgresql || :
  if [[ -n ${POSTGRES_INITDB_WALDIR:-} ]]; then
    mkdir -p "$POSTGRES_INITDB_WALDIR"
    [[ $(id -u) != 0 ]] || find "$POSTGRES_INITDB_WALDIR" ! -user postgres -exec chown postgres: '{}' +
    chmod 0700 "$POSTGRES_INITDB_WALDIR"
  fi
  if [[ $(id -u) == 0 ]]; then
    find "$PGDATA" ! -user postgres -exec chown postgres: '{}' +
    find /var/run/postgresql ! -user postgres -exec chown postgres: '{}' +
  fi
}

verify_minimum_env() {
  if [[ -z $POSTGRES_PASSWORD && $POSTGRES_HOST_AUTH_METHOD != trust ]]; then
    cat >&2 <<'EOF'
Error: Database is uninitialized and superuser password is not specified.
       You must specify POSTGRES_PASSWORD to a non-empty value for the
       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".

       You may also use "POSTGRES_HOST_AUTH_METHOD=trust" to allow all
       connections without a password. This is *not* recommended.
EOF
    exit 1
  fi
  if [[ $POSTGRES_HOST_AUTH_METHOD == trust ]]; then
    echo 'WARNING: POSTGRES_HOST_AUTH_METHOD is "trust": host connections need no password.' >&2
  fi
}

init_database_dir() {
  local args=()
  if [[ -n ${POSTGRES_INITDB_WALDIR:-} ]]; then
    args+=(--waldir "$POSTGRES_INITDB_WALDIR")
  fi
  # POSTGRES_INITDB_ARGS is word-split like the official image does (eval); the password goes
  # through a file descriptor, never the command line; initdb refuses an empty pwfile.
  eval 'initdb --username="$POSTGRES_USER" --pwfile=<(printf "%s\n" "$POSTGRES_PASSWORD") '"$POSTGRES_INITDB_ARGS"' "${args[@]}"'
}

# host connections from anywhere with the server's password_encryption (scram-sha-256), or the
# method in POSTGRES_HOST_AUTH_METHOD. The arguments are the server's, for its settings.
setup_hba() {
  [[ ${1:-} != postgres ]] || shift
  local method
  method="$(postgres -C password_encryption "$@")"
  : "${POSTGRES_HOST_AUTH_METHOD:=$method}"
  {
    printf '\n'
    if [[ $POSTGRES_HOST_AUTH_METHOD == trust ]]; then
      printf '# warning: trust is enabled for all host connections\n'
    fi
    printf 'host all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD"
  } >>"$PGDATA/pg_hba.conf"
}

# A socket-only server for the set-up, with the server's own arguments (config_file=...).
temp_server_start() {
  [[ ${1:-} != postgres ]] || shift
  set -- "$@" -c listen_addresses='' -p "${PGPORT:-5432}"
  PGUSER="${PGUSER:-$POSTGRES_USER}" pg_ctl -D "$PGDATA" -o "$(printf '%q ' "$@")" -w start
}

temp_server_stop() {
  PGUSER="${PGUSER:-postgres}" pg_ctl -D "$PGDATA" -m fast -w stop
}

process_sql() {
  local runner=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
  [[ -z $POSTGRES_DB ]] || runner+=(--dbname "$POSTGRES_DB")
  PGHOST='' PGHOSTADDR='' "${runner[@]}" "$@"
}

setup_db() {
  local admin=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc
               --dbname postgres --set "db=$POSTGRES_DB")
  local exists
  exists="$(PGHOST='' PGHOSTADDR='' "${admin[@]}" --tuples-only <<<"SELECT 1 FROM pg_database WHERE datname = :'db' ;")"
  if [[ -z $exists ]]; then
    PGHOST='' PGHOSTADDR='' "${admin[@]}" <<<'CREATE DATABASE :"db" ;'
  fi
}

process_init_files() {
  local f
  for f; do
    case "$f" in
      *.sh)
        if [[ -x $f ]]; then
          printf '%s: running %s\n' "$0" "$f"; "$f"
        else
          printf '%s: sourcing %s\n' "$0" "$f"
          # shellcheck disable=SC1090
          . "$f"
        fi ;;
      *.sql) printf '%s: running %s\n' "$0" "$f"; process_sql -f "$f" ;;
      *.sql.gz) printf '%s: running %s\n' "$0" "$f"; gunzip -c "$f" | process_sql ;;
      *) printf '%s: ignoring %s\n' "$0" "$f" ;;
    esac
  done
}

wants_help() {
  local arg
  for arg; do
    case "$arg" in
      -'?' | --help | --describe-config | -V | --version) return 0 ;;
    esac
  done
  return 1
}

main() {
  if [[ ${1:0:1} == - ]]; then
    set -- postgres "$@"
  fi
  if [[ ${1:-} == postgres ]] && ! wants_help "$@"; then
    setup_env
    create_directories
    if [[ $(id -u) == 0 ]]; then
      # Like gosu: the postgres user's groups and HOME; the rest of the environment is kept.
      HOME=/var/lib/postgresql exec setpriv --reuid=postgres --regid=postgres --init-groups \
        "${BASH_SOURCE[0]}" "$@"
    fi
    if [[ -z $DATABASE_ALREADY_EXISTS ]]; then
      verify_minimum_env
      ls /docker-entrypoint-initdb.d/ >/dev/null
      init_database_dir
      setup_hba "$@"
      export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
      temp_server_start "$@"
      setup_db
      shopt -s nullglob
      process_init_files /docker-entrypoint-initdb.d/*
      shopt -u nullglob
      temp_server_stop
      unset PGPASSWORD
      printf '\nPostgreSQL init process complete; ready for start up.\n\n'
    else
      printf '\nPostgreSQL Database directory appears to contain a database; Skipping initialization\n\n'
    fi
  fi
  exec "$@"
}

main "$@"
