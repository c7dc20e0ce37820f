"""The worked examples in the documentation are the engine's own output."""

from __future__ import annotations

import os
import runpy

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", ".."))


def test_docs_show_what_the_engine_computes():
    render = runpy.run_path(os.path.join(ROOT, "tools", "worked_examples.py"))["render"]
    with open(os.path.join(ROOT, "docs", "sizing-examples.md"), encoding="utf-8") as handle:
        assert handle.read() == render(), "docs/sizing-examples.md is stale: regenerate it (see tools/worked_examples.py)"
