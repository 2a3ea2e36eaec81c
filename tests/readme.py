"""The README's variable tables, read as a user reads them: the names in each row's first column."""

from __future__ import annotations

import re

_NAME = re.compile(r"`([A-Z][A-Z0-9_]*)`")


def documented_variables(section: str) -> set[str]:
    """Every variable spelt whole, in backticks, in the first cell of a table row of ``section``."""
    names: set[str] = set()
    for line in section.splitlines():
        cells = line.split("|")
        if line.startswith("|") and len(cells) > 2:
            names.update(_NAME.findall(cells[1]))
    return names
