"""The calls-per-day chart, drawn on the server as SVG with pygal (no script in it)."""

from __future__ import annotations

from collections.abc import Sequence

import pygal
from pygal.style import Style

from callcenter.calls.listing import DayCounts

_STYLE = Style(
    background="white",
    plot_background="white",
    foreground="#222",
    foreground_strong="#000",
    foreground_subtle="#666",
    colors=("#2e7d32", "#c62828", "#1565c0"),
    font_family="sans-serif",
)


def calls_per_day(days: Sequence[DayCounts], labels: Sequence[str], *, title: str) -> bytes:
    """Answered, missed and answered-by-a-substitute calls per day, as an SVG document."""
    bar = pygal.Bar(
        js=[],  # pygal links its tooltip script by default; the console runs no script
        style=_STYLE,
        title=title,
        width=900,
        height=360,
        x_label_rotation=60,
        show_minor_x_labels=False,
        x_labels_major_every=5,
        legend_at_bottom=True,
        print_values=False,
    )
    bar.x_labels = [day.day.strftime("%d.%m.") for day in days]
    answered, missed, substitute = labels
    bar.add(answered, [day.answered for day in days])
    bar.add(missed, [day.missed for day in days])
    bar.add(substitute, [day.as_substitute for day in days])
    return bytes(bar.render())
