#!/usr/bin/env bash
# Run every check and stop at the first failure: unit tests, ansible-test sanity, ansible-lint
# (ansible-core 2.19 on Python 3.11), the same three with the newest toolchain (ansible-core 2.21
# on Python 3.12+), the packaging check, molecule.
# Ends with one summary line of what passed and failed.
# Three jobs run in the background meanwhile, since these checks leave a CPU idle most of the time:
# the test hosts' images and the stand-ins (mostly the network's and the disk's time), which
# molecule then finds cached; the newest toolchain's checks (the two ansible-lint runs may overlap,
# each with the cache of its own virtual environment); and the packaging check, which mostly waits
# for the Galaxy importer's installation. The stages of the last two wait for them.
source "$(dirname "$0")/lib.sh"

stages=(unit sanity lint newest package molecule)
declare -A result=()

run_stage() {
  local stage=$1
  case "$stage" in
    unit)     activate_venv && "$REPO_ROOT/tools/unit.sh" ;;
    sanity)   "$REPO_ROOT/tools/sanity.sh" ;;
    lint)     "$REPO_ROOT/tools/lint.sh" ;;
    newest)   return "$newest_status" ;;
    package)  return "$package_status" ;;
    molecule) "$REPO_ROOT/tools/molecule.sh" ;;
  esac
}

mkdir -p "$CACHE_DIR"
declare -A job_pid=() job_log=()
# start_job NAME COMMAND...: run COMMAND in the background, its output kept for finish_job.
start_job() {
  local name=$1; shift
  job_log[$name]="$CACHE_DIR/$name.log"
  "$@" >"${job_log[$name]}" 2>&1 &
  job_pid[$name]=$!
}
# finish_job NAME: wait for the job (in this shell, its parent), print its output prefixed with
# its name, and return its status; a job already finished returns 0.
finish_job() {
  local name=$1 status=0
  [[ -n ${job_pid[$name]:-} ]] || return 0
  wait "${job_pid[$name]}" || status=$?
  job_pid[$name]=""
  sed "s/^/[$name] /" "${job_log[$name]}" >&2
  return "$status"
}

build_images() { "$REPO_ROOT/tools/build-images.sh" && "$REPO_ROOT/tools/build-standins.sh"; }
start_job images build_images
start_job newest "$REPO_ROOT/tools/newest.sh"
newest_status=0 package_status=0

"$REPO_ROOT/tools/venv.sh"
# After the virtual environment, which the packaging check uses.
start_job package "$REPO_ROOT/tools/package.sh"
failed=""
for stage in "${stages[@]}"; do
  if [[ -n $failed ]]; then
    result[$stage]="not run"
    continue
  fi
  log "stage: $stage"
  start=$SECONDS
  case "$stage" in
    # They wait here, in the shell that started them (a stage runs in a subshell).
    newest) finish_job newest || newest_status=$? ;;
    package) finish_job package || package_status=$? ;;
    # A failed background build is only reported: molecule.sh builds what is missing again, in the
    # foreground, and stops with the build's error.
    molecule) finish_job images || log "the background build of the test images failed (status $?)" ;;
  esac
  if (run_stage "$stage"); then
    result[$stage]="passed in $((SECONDS - start))s"
  else
    result[$stage]="FAILED after $((SECONDS - start))s"
    failed=$stage
  fi
  log "stage: $stage ${result[$stage]}"
done

# A run that stopped early leaves no job behind (their output is not needed then).
finish_job newest 2>/dev/null || true
finish_job package 2>/dev/null || true
finish_job images 2>/dev/null || true
passed=0
echo
for stage in "${stages[@]}"; do
  printf '  %-9s %s\n' "$stage" "${result[$stage]}"
  [[ ${result[$stage]} == passed* ]] && passed=$((passed + 1))
done
nfailed=$([[ -n $failed ]] && echo 1 || echo 0)
echo "stages: $passed passed, $nfailed failed"
[[ -z $failed ]]
