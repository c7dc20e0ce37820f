# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Small numeric helpers shared by the sizing modules. Memory is in MiB throughout."""

from __future__ import annotations

import math


def clamp(value, low, high):
    """Return ``value`` bounded to ``[low, high]``."""
    return max(low, min(high, value))


def human_mb(mb):
    """Format MiB for people: ``512 MiB``, ``7.5 GiB``, ``1.9 TiB``."""
    if mb >= 1024 * 1024:
        return "%.1f TiB" % (mb / (1024.0 * 1024.0))
    if mb >= 1024:
        return "%.1f GiB" % (mb / 1024.0)
    return "%d MiB" % mb


def pg_size(mb):
    """Format MiB as a PostgreSQL size: whole GB when exact, else MB; kB below 1 MB."""
    if mb < 1:
        return "%dkB" % max(64, int(mb * 1024))
    mb = int(mb)
    if mb >= 1024 and mb % 1024 == 0:
        return "%dGB" % (mb // 1024)
    return "%dMB" % mb


def ceil_div(a, b):
    """Integer ceiling of a / b."""
    return -(-a // b)


def round_cpus(value):
    """CPU amounts are planned in hundredths of a CPU."""
    return math.floor(value * 100 + 1e-9) / 100.0
