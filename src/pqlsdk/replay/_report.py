"""The replay's findings as one offline HTML file with inline SVG charts.

No scripts, fonts or stylesheets from anywhere: the page carries its own CSS and
draws its charts as SVG, and its Content-Security-Policy forbids fetching
anything, so it opens the same on a laptop on a plane. Every user id, model name
and label is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any, Final

from .._scoring import show

__all__ = ["write_report"]

_COLOURS: Final = ("#3b6fb6", "#e0813a", "#4c9a5b", "#c9463d", "#8a63b3", "#7f7f7f")
_STYLE: Final = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { padding: 2px 8px; text-align: right; border-bottom: 1px solid #ddd; }
th:first-child, td:first-child { text-align: left; }
.pair { display: flex; gap: 2em; flex-wrap: wrap; }
.chart { margin: 0.5em 0 1.5em; }
svg text { font: 11px sans-serif; fill: #333; }
.note { color: #555; }
"""
_W: Final = 560
_H: Final = 240
_LEFT: Final = 48
_BOTTOM: Final = 48


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _bars(
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    *,
    ceiling: float,
    intervals: Sequence[tuple[float, float] | None] = (),
    percent: bool = False,
) -> str:
    """Draw a bar chart (with error whiskers when ``intervals`` are given) as SVG."""
    ceiling = ceiling or 1.0
    plot_w, plot_h = _W - _LEFT - 10, _H - _BOTTOM - 24
    step = plot_w / max(len(values), 1)
    parts = [
        f'<svg class="chart" role="img" width="{_W}" height="{_H}" '
        f'viewBox="0 0 {_W} {_H}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<text x="{_LEFT}" y="14">{escape(title)}</text>',
        f'<line x1="{_LEFT}" y1="{24 + plot_h}" x2="{_W - 10}" y2="{24 + plot_h}" stroke="#999"/>',
    ]
    for tick in (0.0, 0.5, 1.0):
        y = 24 + plot_h - tick * plot_h
        text = _percent(tick * ceiling) if percent else show(round(tick * ceiling, 1))
        parts.append(f'<text x="{_LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">{text}</text>')
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        x = _LEFT + i * step + step * 0.15
        height = value / ceiling * plot_h
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{24 + plot_h - height:.1f}" '
            f'width="{step * 0.7:.1f}" height="{height:.1f}" fill="{_COLOURS[0]}">'
            f"<title>{escape(label)}: {_percent(value) if percent else show(value)}</title></rect>"
        )
        interval = intervals[i] if i < len(intervals) else None
        if interval is not None:
            middle = x + step * 0.35
            low = 24 + plot_h - interval[0] / ceiling * plot_h
            high = 24 + plot_h - interval[1] / ceiling * plot_h
            parts.append(
                f'<line x1="{middle:.1f}" y1="{low:.1f}" x2="{middle:.1f}" y2="{high:.1f}" '
                'stroke="#222"/>'
            )
        parts.append(
            f'<text x="{x + step * 0.35:.1f}" y="{_H - _BOTTOM + 40}" text-anchor="middle" '
            f'transform="rotate(-30 {x + step * 0.35:.1f} {_H - _BOTTOM + 40})">'
            f"{escape(label)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _lines(title: str, labels: Sequence[str], series: dict[str, list[float]]) -> str:
    """Draw one line per series over ``labels`` (instants) as SVG, with a legend."""
    plot_w, plot_h = _W - _LEFT - 110, _H - _BOTTOM - 24
    ceiling = max((v for values in series.values() for v in values), default=0) or 1
    step = plot_w / max(len(labels) - 1, 1)
    parts = [
        f'<svg class="chart" role="img" width="{_W}" height="{_H}" '
        f'viewBox="0 0 {_W} {_H}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<text x="{_LEFT}" y="14">{escape(title)}</text>',
        f'<text x="{_LEFT - 4}" y="28" text-anchor="end">{show(ceiling)}</text>',
        f'<text x="{_LEFT - 4}" y="{24 + plot_h}" text-anchor="end">0</text>',
    ]
    for index, (name, values) in enumerate(series.items()):
        colour = _COLOURS[index % len(_COLOURS)]
        points = " ".join(
            f"{_LEFT + i * step:.1f},{24 + plot_h - v / ceiling * plot_h:.1f}"
            for i, v in enumerate(values)
        )
        parts.append(
            f'<polyline class="series" points="{points}" fill="none" stroke="{colour}" '
            'stroke-width="2"/>'
        )
        y = 30 + index * 16
        parts.append(f'<rect x="{_W - 100}" y="{y - 9}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{_W - 85}" y="{y}">{escape(name)}</text>')
    parts.extend(  # the first and last dates (a timeline has at least one point)
        f'<text x="{_LEFT + i * step:.1f}" y="{_H - _BOTTOM + 20}" text-anchor="middle">'
        f"{escape(labels[i][:10])}</text>"
        for i in sorted({0, len(labels) - 1})
    )
    parts.append("</svg>")
    return "".join(parts)


def _table(title: str, rows: list[dict[str, Any]], outcomes: bool) -> str:
    head = ["band", "n"] + (["converted", "rate", "95% CI", "median days", "revenue"] * outcomes)
    out = [f"<table><caption>{escape(title)}</caption><tr>"]
    out += [f"<th>{escape(h)}</th>" for h in head]
    out.append("</tr>")
    for row in rows:
        cells = [escape(row["band"]), str(row["subjects"])]
        if outcomes:
            ci = row["ci95"]
            days = row["median_days_to_convert"]
            cells += [
                str(row["converted"]),
                _percent(row["rate"]),
                "-" if ci is None else f"{_percent(ci[0])} to {_percent(ci[1])}",
                "-" if days is None else f"{days:.1f}",
                "-" if row["revenue"] is None else show(round(row["revenue"], 2)),
            ]
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    out.append("</table>")
    return "".join(out)


def render(data: dict[str, Any]) -> str:
    """Return the HTML report of the summary ``data``."""
    outcomes = data["outcomes"]
    models = ", ".join(data["models"])
    body = [
        f"<h1>Replay of {escape(models)}</h1>",
        f'<p class="note">{data["events"]:,} events, {data["users"]:,} users, '
        f"{data['accounts']:,} accounts; evaluated at {escape(data['at'])}. "
        f"Rules: {escape(', '.join(data['rules']))}.</p>",
    ]
    if outcomes:
        body.append(f'<p class="note">{escape(data["look_ahead_rule"])}</p>')
    body.append("<h2>Charts</h2>")
    for tables in data["tables"]:
        users = tables.get("user")
        if users is None:
            continue
        bands = users["bands"]
        labels = [row["band"] for row in bands]
        counts = [float(row["subjects"]) for row in bands]
        body.append(
            _bars(
                f"Score distribution ({tables['rules']}: {tables['model']}), users per band",
                labels,
                counts,
                ceiling=max(counts, default=1),
            )
        )
        if outcomes:
            rates = [row["rate"] or 0.0 for row in bands]
            intervals = [(row["ci95"][0], row["ci95"][1]) if row["ci95"] else None for row in bands]
            body.append(
                _bars(
                    f"Conversion rate by band ({tables['rules']}: {tables['model']}), 95% CI",
                    labels,
                    rates,
                    ceiling=max((i[1] for i in intervals if i), default=1.0),
                    intervals=intervals,
                    percent=True,
                )
            )
    timeline = data["timeline"]
    if timeline:
        names = list(timeline[0]["tiers"])
        series = {name: [float(p["tiers"][name]) for p in timeline] for name in names}
        series["changed"] = [float(p["changed"]) for p in timeline]
        body.append(_lines("Tiers over time (users)", [p["at"] for p in timeline], series))
    for kind in ("user", "account"):
        for grouping in ("tiers", "bands"):
            if kind not in data["tables"][0]:
                continue
            body.append('<div class="pair">')
            body += [
                _table(
                    f"{kind}s by {grouping[:-1]} ({t['rules']}: {t['model']})",
                    t[kind][grouping],
                    outcomes,
                )
                for t in data["tables"]
            ]
            body.append("</div>")
    if outcomes:
        body.append(_calibration(data["calibration"]))
    if "tier_changes" in data:
        body.append(_changes(data["tier_changes"]))
    body.append(_loggers(data["single_loggers"]))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>pqlsdk replay: {escape(models)}</title><style>{_STYLE}</style></head>"
        "<body>" + "\n".join(body) + "</body></html>\n"
    )


def _calibration(calibration: dict[str, Any]) -> str:
    out = [f"<h2>Suggested thresholds for tier {escape(calibration['tier'])}</h2><ul>"]
    for s in calibration["suggestions"]:
        if s["method"] == "target_rate":
            why = f"lowest band converting at {_percent(s['target_rate'])} or better"
        else:
            why = f"best separation (Youden's J {s['j']:.3f})"
        out.append(
            f"<li>{show(s['current'])} &rarr; {show(s['threshold'])}: {escape(why)}; "
            f"moves {s['moves_up']} up, {s['moves_down']} down</li>"
        )
    if not calibration["suggestions"]:
        out.append("<li>none</li>")
    out.append("</ul>")
    return "".join(out)


def _changes(changes: list[dict[str, Any]]) -> str:
    out = [f"<h2>Users whose tier differs ({len(changes)})</h2><table>"]
    for index, change in enumerate(changes):
        if index == 0:
            files = "".join(f"<th>{escape(side['rules'])}</th>" for side in change["under"])
            out.append(f"<tr><th>user</th>{files}</tr>")
        cells = [
            f"<b>{show(side['score'])} {escape(side['tier'])}</b>"
            + ("" if side["gate_passed"] else " (gate not passed)")
            + "<br>"
            + "<br>".join(escape(r) for r in side["reasons"])
            for side in change["under"]
        ]
        out.append(
            f"<tr><td>{escape(change['user'])}</td>"
            + "".join(f'<td style="text-align:left">{c}</td>' for c in cells)
            + "</tr>"
        )
    out.append("</table>")
    return "".join(out)


def _loggers(loggers: dict[str, Any]) -> str:
    users = loggers["users"]
    sustained = loggers["sustained_model"]
    out = [
        f'<h2>Single loggers ({len(users)})</h2><p class="note">At least '
        f"{_percent(loggers['share'])} of their events on one UTC day, tier "
        f"{escape(loggers['tier'])} or above.</p><table><tr><th>user</th><th>events</th>"
        "<th>on busiest day</th><th>score</th>"
        + (f"<th>{escape(sustained)}</th>" if sustained else "")
        + "</tr>"
    ]
    for entry in users:
        other = entry.get("sustained")
        out.append(
            f"<tr><td>{escape(entry['user'])}</td><td>{entry['tracks']}</td>"
            f"<td>{entry['busiest_day_tracks']}</td>"
            f"<td>{show(entry['score'])} {escape(entry['tier'])}</td>"
            + (
                f"<td>{show(other['score'])} {escape(other['tier'])}</td>"
                if other is not None
                else ""
            )
            + "</tr>"
        )
    out.append("</table>")
    return "".join(out)


def write_report(data: dict[str, Any], path: Path) -> None:
    """Write the HTML report of ``data`` to ``path``."""
    path.write_text(render(data), encoding="utf-8")
