"""The README's variable tables, read as a user reads them: the names in each row's first column."""

from __future__ import annotations

import re

_NAME = re.compile(r"`([A-Z][A-Z0-9_]*)`")


def variable_rows(section: str) -> list[tuple[set[str], dict[str, str]]]:
    """The rows of the tables of ``section`` whose header's first cell is ``variable``: per row, the
    variables spelt whole in its first cell and its other cells by their column's header."""
    rows: list[tuple[set[str], dict[str, str]]] = []
    header: list[str] | None = None
    for line in section.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells[0] == "variable":
            header = cells
        elif header is not None and not set(cells[0]) <= {"-", ":"}:
            rows.append((set(_NAME.findall(cells[0])), dict(zip(header[1:], cells[1:], strict=True))))
    return rows


def environment_names(settings_class: type) -> dict[str, set[str]]:
    """Per field of a pydantic-settings class, the environment variables it declares: its
    upper-case aliases, else the class's prefix and the field's name."""
    prefix = settings_class.model_config.get("env_prefix", "")  # type: ignore[attr-defined]
    names = {}
    for field, info in settings_class.model_fields.items():  # type: ignore[attr-defined]
        choices = getattr(info.validation_alias, "choices", None) or []
        aliases = {a for a in choices if isinstance(a, str) and a.isupper()}
        names[field] = aliases or {f"{prefix}{field}".upper()}
    return names
