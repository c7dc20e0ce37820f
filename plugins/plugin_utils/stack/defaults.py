# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The stack's defaults that roles read on nearly every task (through the lookup
difyops.dify.constants), kept apart from the Compose model so that reading them imports nothing
else: each worker process of a run compiles what it imports of the collection from source."""

from __future__ import annotations

# Where the project lives unless dify_stack_project_dir says otherwise.
DEFAULT_PROJECT_DIR = "/opt/dify"
# The gateway's plain HTTP port unless dify_stack_gateway_port says otherwise (nginx_gateway's
# nginx_gateway_port follows it).
DEFAULT_GATEWAY_PORT = 80
# The UID the app containers' storage directories belong to (the user Dify's api image runs as).
DIFY_UID = 1001
