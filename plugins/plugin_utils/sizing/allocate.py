# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Water-filling: share a budget among services by weight, above their floors, below their caps."""

from __future__ import annotations

from typing import Dict, Mapping, Optional


def water_fill(budget: float, floors: Mapping[str, float], weights: Mapping[str, float],
               caps: Mapping[str, Optional[float]]) -> Dict[str, float]:
    """Give every service its floor, then share what is left by weight; a service that reaches
    its cap keeps the cap and the rest is shared again among the others.

    The caller guarantees ``sum(floors) <= budget``. What no service can take stays unshared.
    """
    amounts = dict(floors)
    open_names = [n for n in floors if weights.get(n, 0) > 0]
    left = budget - sum(floors.values())
    while left > 1e-9 and open_names:
        total_weight = sum(weights[n] for n in open_names)
        capped = []
        for name in open_names:
            cap = caps.get(name)
            share = left * weights[name] / total_weight
            if cap is not None and amounts[name] + share >= cap:
                capped.append(name)
        if not capped:
            for name in open_names:
                amounts[name] += left * weights[name] / total_weight
            left = 0.0
            break
        for name in capped:
            cap = caps[name]
            left -= cap - amounts[name]
            amounts[name] = cap
            open_names.remove(name)
    return amounts
