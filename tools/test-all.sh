#!/usr/bin/env bash
# Run every check in order and stop at the first failure:
# unit tests, ansible-test sanity, ansible-lint (ansible-core 2.19 on Python 3.11), the same three
# with the newest toolchain (ansible-core 2.21 on Python 3.12+), the packaging check, molecule.
# Ends with one summary line of what passed and failed.
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
    molecule) "$REPO_ROOT/tools/molecule.sh" ;;
  esac
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
done

passed=0
echo
for stage in "${stages[@]}"; do
  printf '  %-9s %s\n' "$stage" "${result[$stage]}"
  [[ ${result[$stage]} == passed* ]] && passed=$((passed + 1))
done
nfailed=$([[ -n $failed ]] && echo 1 || echo 0)
echo "stages: $passed passed, $nfailed failed"
[[ -z $failed ]]
