#!/usr/bin/env bash
# The main job on the embedded default: plan Dify for this machine (or any inventory: -i FILE).
source "$(dirname "$0")/lib.sh"
activate_venv
cd "$REPO_ROOT" || exit
ansible-playbook playbooks/plan.yml "$@"
