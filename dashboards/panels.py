"""Small typed helpers over grafana-foundation-sdk: the panel kinds our dashboards use.

Every panel reads Prometheus through the ``$datasource`` variable (a data source picked by uid,
so the JSON works in any Grafana whatever its data source is called). Thresholds are the alert
values, so a line on a graph and a page from Alertmanager mean the same thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import gauge as gauge_b
from grafana_foundation_sdk.builders import piechart as pie_b
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.builders import stat as stat_b
from grafana_foundation_sdk.builders import timeseries as ts_b
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import piechart as pm
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    GridPos,
    Panel,
    Threshold,
    ThresholdsMode,
)

from otel_setup import catalog

PanelBuilder = stat_b.Panel | gauge_b.Panel | ts_b.Panel | pie_b.Panel

DATASOURCE_VAR = "datasource"
DATASOURCE = DataSourceRef(type_val="prometheus", uid=f"${{{DATASOURCE_VAR}}}")

# Alert values (prometheus/rules/alerts.yml), shared with the report.
PRECISION_ALERT = catalog.PRECISION_ALERT
CACHE_HIT_TARGET = catalog.CACHE_HIT_TARGET
SLA_VIOLATIONS_ALERT = catalog.SLA_VIOLATIONS_ALERT


@dataclass(frozen=True)
class Q:
    """One PromQL target: ``exemplar`` asks Grafana to draw the exemplars of a histogram query."""

    expr: str
    legend: str = "__auto"
    exemplar: bool = False
    instant: bool = False


def _target(q: Q, ref: str) -> prom.Dataquery:
    target = (prom.Dataquery().expr(q.expr).legend_format(q.legend).ref_id(ref)
              .datasource(DATASOURCE).exemplar(q.exemplar))
    return target.instant() if q.instant else target.range()


def _targets(panel: PanelBuilder, queries: list[Q]) -> None:
    for i, q in enumerate(queries):
        panel.with_target(_target(q, chr(ord("A") + i)))


def steps(*points: tuple[float | None, str]) -> db.ThresholdsConfig:
    """Absolute threshold steps: ``(None, "green"), (0.1, "red")`` = red from 0.1 up."""
    return db.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(
        [Threshold(value=value, color=color) for value, color in points])


def above(limit: float, ok: str = "green", bad: str = "red") -> db.ThresholdsConfig:
    return steps((None, ok), (limit, bad))


def neutral() -> db.ThresholdsConfig:
    """One colour: a figure with no alert value (throughput, users)."""
    return steps((None, "blue"))


def below(limit: float) -> db.ThresholdsConfig:
    return steps((None, "red"), (limit, "green"))


def _place(panel: PanelBuilder, pid: int, x: int, y: int, w: int, h: int) -> None:
    panel.id(pid).grid_pos(GridPos(x=x, y=y, w=w, h=h)).datasource(DATASOURCE)


def _last() -> cb.ReduceDataOptions:
    return cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def stat(pid: int, title: str, q: Q, *, unit: str, thresholds: db.ThresholdsConfig,
         pos: tuple[int, int, int, int], description: str = "") -> stat_b.Panel:
    panel = (stat_b.Panel().title(title).description(description).unit(unit).thresholds(thresholds)
             .reduce_options(_last()).color_mode(cm.BigValueColorMode.BACKGROUND)
             .graph_mode(cm.BigValueGraphMode.AREA))
    _place(panel, pid, *pos)
    _targets(panel, [q])
    return panel


def gauge(pid: int, title: str, q: Q, *, unit: str, thresholds: db.ThresholdsConfig, max_value: float,
          pos: tuple[int, int, int, int], description: str = "") -> gauge_b.Panel:
    panel = (gauge_b.Panel().title(title).description(description).unit(unit).min(0).max(max_value)
             .thresholds(thresholds).reduce_options(_last())
             .show_threshold_markers(True).show_threshold_labels(True))
    _place(panel, pid, *pos)
    _targets(panel, [q])
    return panel


def timeseries(pid: int, title: str, queries: list[Q], *, unit: str, pos: tuple[int, int, int, int],
               thresholds: db.ThresholdsConfig | None = None, stacked: bool = False,
               min_value: float | None = None, max_value: float | None = None,
               description: str = "") -> ts_b.Panel:
    """A time series; with ``thresholds`` the alert value is drawn as a dashed line."""
    panel = (ts_b.Panel().title(title).description(description).unit(unit).line_width(1).fill_opacity(10)
             .legend(cb.VizLegendOptions().display_mode(cm.LegendDisplayMode.LIST)
                     .placement(cm.LegendPlacement.BOTTOM).show_legend(True))
             .tooltip(cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING)))
    if thresholds is not None:
        panel.thresholds(thresholds).thresholds_style(
            cb.GraphThresholdsStyleConfig().mode(cm.GraphThresholdsStyleMode.DASHED))
    if stacked:
        panel.stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL))
    if min_value is not None:
        panel.min(min_value)
    if max_value is not None:
        panel.max(max_value)
    _place(panel, pid, *pos)
    _targets(panel, queries)
    return panel


def pie(pid: int, title: str, q: Q, *, unit: str, pos: tuple[int, int, int, int],
        description: str = "") -> pie_b.Panel:
    panel = (pie_b.Panel().title(title).description(description).unit(unit)
             .pie_type(pm.PieChartType.DONUT).reduce_options(_last())
             .legend(pie_b.PieChartLegendOptions().display_mode(cm.LegendDisplayMode.TABLE)
                     .placement(cm.LegendPlacement.RIGHT).show_legend(True)
                     .values([pm.PieChartLegendValues.VALUE,
                              pm.PieChartLegendValues.PERCENT])))
    _place(panel, pid, *pos)
    _targets(panel, [q])
    return panel


def dashboard(uid: str, title: str, description: str, panels: Sequence[Builder[Panel]]) -> db.Dashboard:
    board = (db.Dashboard(title).uid(uid).description(description).tags(["shopfds"])
             .editable().refresh("30s").time("now-1h", "now").timezone("browser")
             .tooltip(DashboardCursorSync.CROSSHAIR)
             .with_variable(db.DatasourceVariable(DATASOURCE_VAR).label("Prometheus").type("prometheus")))
    for panel in panels:
        board.with_panel(panel)
    return board
