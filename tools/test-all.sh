#!/usr/bin/env bash
# Run every check in order and stop at the first failure:
# unit tests, ansible-test sanity, ansible-lint (ansible-core 2.19 on Python 3.11), the same three
# with the newest toolchain (ansible-core 2.21 on Python 3.12+), the packaging check, molecule.
# Ends with one summary line of what passed and failed.
# The test hosts' images and the stand-ins build in the background meanwhile (their time is mostly
# the network's and the disk's); molecule waits for them and finds them cached.
source "$(dirname "$0")/lib.sh"

stages=(unit sanity lint newest package molecule)
declare -A result=()

run_stage() {
  local stage=$1
  case "$stage" in
    unit)     activate_venv && "$REPO_ROOT/tools/unit.sh" ;;
    sanity)   "$REPO_ROOT/tools/sanity.sh" ;;
    lint)     "$REPO_ROOT/tools/lint.sh" ;;
    newest)   "$REPO_ROOT/tools/newest.sh" ;;
    package)  "$REPO_ROOT/tools/package.sh" ;;
    molecule) wait_for_images && "$REPO_ROOT/tools/molecule.sh" ;;
  esac
}

images_log="$CACHE_DIR/images.log"
mkdir -p "$CACHE_DIR"
( "$REPO_ROOT/tools/build-images.sh" && "$REPO_ROOT/tools/build-standins.sh" ) >"$images_log" 2>&1 &
images_pid=$!

# wait_for_images: the background build's output, once it ended. A failed build is only reported:
# molecule.sh builds what is missing again, in the foreground, and stops with the build's error.
wait_for_images() {
  [[ -n $images_pid ]] || return 0
  local status=0
  wait "$images_pid" || status=$?
  images_pid=""
  sed 's/^/[images] /' "$images_log" >&2
  [[ $status -eq 0 ]] || log "the background build of the test images failed (status $status)"
  return 0
}

"$REPO_ROOT/tools/venv.sh"
failed=""
for stage in "${stages[@]}"; do
  if [[ -n $failed ]]; then
    result[$stage]="not run"
    continue
  fi
  log "stage: $stage"
  start=$SECONDS
  if (run_stage "$stage"); then
    result[$stage]="passed in $((SECONDS - start))s"
  else
    result[$stage]="FAILED after $((SECONDS - start))s"
    failed=$stage
  fi
  log "stage: $stage ${result[$stage]}"
done

wait_for_images
passed=0
echo
for stage in "${stages[@]}"; do
  printf '  %-9s %s\n' "$stage" "${result[$stage]}"
  [[ ${result[$stage]} == passed* ]] && passed=$((passed + 1))
done
nfailed=$([[ -n $failed ]] && echo 1 || echo 0)
echo "stages: $passed passed, $nfailed failed"
[[ -z $failed ]]
