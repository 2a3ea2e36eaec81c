"""The report on the terminal: a headline verdict and rich tables."""

from __future__ import annotations

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .figures import Figures
from .tables import TableData, all_tables, header, headline

_STYLES = {"PASS": "green", "FAIL": "bold red", "n/a": "dim", "too few labels": "yellow"}


def rich_table(data: TableData) -> Table:
    table = Table(title=data.title, title_justify="left")
    for column in data.columns:
        table.add_column(column, overflow="fold")
    for r, row in enumerate(data.rows):
        url = {c: u for (row_index, c), u in data.links.items() if row_index == r}
        table.add_row(*(Text(cell, style=f"link {url[c]}" if c in url else _STYLES.get(cell, ""))
                        for c, cell in enumerate(row)))
    return table


def print_report(f: Figures, console: Console) -> None:
    ok, text = headline(f)
    lines = header(f)
    console.print(Panel(Text(text, style="bold green" if ok else "bold red"), title=lines[0], title_align="left"))
    for line in lines[1:]:
        console.print(f"  {line}", style="dim", markup=False, highlight=False)
    for data in all_tables(f):
        if data.rows:
            console.print(rich_table(data))
    if not f.exemplars:
        console.print("no exemplars of fds_evaluation_duration_seconds in the window")
