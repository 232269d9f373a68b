"""A self-contained HTML audit report: inline SVG figures, no script, no network.

Everything the page shows is in the one file (styles included), so it reads
offline and prints as it shows. The page is rendered by a Jinja2 template that
escapes every value (autoescape); only the figures, built here from numbers
and escaped text, go in as markup. Its ``Content-Security-Policy`` forbids
scripts, plug-ins, frames, forms and every fetch, so that a value that slipped
through unescaped still could not run or load anything.
"""

from __future__ import annotations

import html

import numpy as np

__all__ = ["CSP", "page", "reliability_svg", "routing_svg"]

#: The page needs inline CSS and inline SVG only.
CSP = ("default-src 'none'; script-src 'none'; object-src 'none'; "
       "style-src 'unsafe-inline'; img-src data:; font-src 'none'; "
       "connect-src 'none'; frame-src 'none'; base-uri 'none'; "
       "form-action 'none'")

W, H, PAD = 420, 300, 44


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _xy(x, y):
    return PAD + x * (W - 2 * PAD), H - PAD - y * (H - 2 * PAD)


def _axes(title, xlabel, ylabel, y_low=0.0) -> list[str]:
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" '
             f'width="{W}" height="{H}" viewBox="0 0 {W} {H}">',
             f"<title>{_e(title)}</title>",
             f'<rect x="{PAD}" y="{PAD}" width="{W - 2 * PAD}" '
             f'height="{H - 2 * PAD}" fill="#fff" stroke="#444"/>']
    for k in range(6):
        v = k / 5
        x, _ = _xy(v, 0)
        _, y = _xy(0, v)
        label = y_low + v * (1 - y_low)
        parts.append(f'<text x="{x:.1f}" y="{H - PAD + 14}" font-size="10" '
                     f'text-anchor="middle">{v:.1f}</text>')
        parts.append(f'<text x="{PAD - 4}" y="{y + 3:.1f}" font-size="10" '
                     f'text-anchor="end">{label:.2f}</text>')
    parts.append(f'<text x="{W / 2}" y="{H - 8}" font-size="11" '
                 f'text-anchor="middle">{_e(xlabel)}</text>')
    parts.append(f'<text x="12" y="{H / 2}" font-size="11" text-anchor="middle" '
                 f'transform="rotate(-90 12 {H / 2})">{_e(ylabel)}</text>')
    parts.append(f'<text x="{W / 2}" y="{PAD - 10}" font-size="12" '
                 f'font-weight="bold" text-anchor="middle">{_e(title)}</text>')
    return parts


def reliability_svg(confidence, correct, *, n_bins=10, title="Reliability"):
    """Accuracy against confidence in equal-width bins (bar area ~ count).

    Returns markup (numbers and escaped text only).
    """
    from markupsafe import Markup

    parts = _axes(title, "confidence (largest probability)", "accuracy")
    x0, y0 = _xy(0, 0)
    x1, y1 = _xy(1, 1)
    parts.append(f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y1}" '
                 'stroke="#999" stroke-dasharray="4 3"/>')
    edges = np.linspace(0, 1, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, n_bins - 1)
    for b in range(n_bins):
        rows = which == b
        if not rows.any():
            continue
        acc = float(np.mean(correct[rows]))
        left, top = _xy(edges[b], acc)
        right, bottom = _xy(edges[b + 1], 0)
        parts.append(
            f'<rect class="bin" x="{left:.1f}" y="{top:.1f}" '
            f'width="{right - left - 1:.1f}" height="{bottom - top:.1f}" '
            f'fill="#4a7fb5" fill-opacity="0.75"><title>{edges[b]:.1f}-'
            f'{edges[b + 1]:.1f}: accuracy {acc:.3f} on {int(rows.sum())} rows'
            "</title></rect>")
    parts.append("</svg>")
    return Markup("".join(parts))


def _polyline(points, colour, dash="") -> str:
    pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    extra = f' stroke-dasharray="{dash}"' if dash else ""
    return (f'<polyline points="{pts}" fill="none" stroke="{colour}" '
            f'stroke-width="2"{extra}/>')


def routing_svg(confidence, correct, targets, thresholds, level):
    """Precision of the accepted rows (and its lower bound) against their share.

    One point per candidate threshold; dashed lines are the tiers' targets,
    dots the certified thresholds. Returns markup (numbers only).
    """
    from markupsafe import Markup

    from ..routing._stats import default_thresholds, precision_lower_bound

    y_low = 0.5
    parts = _axes("Routing curve", "share of rows accepted",
                  "precision of accepted rows", y_low=y_low)

    def at(share, prec):
        return _xy(share, (min(max(prec, y_low), 1.0) - y_low) / (1 - y_low))

    n = max(len(confidence), 1)
    curve, bound = [], []
    for t in default_thresholds()[::-1]:
        acc = confidence >= t
        k, m = int(correct[acc].sum()), int(acc.sum())
        if m == 0:
            continue
        curve.append(at(m / n, k / m))
        bound.append(at(m / n, float(precision_lower_bound(k, m, level))))
    parts.append(_polyline(curve, "#1b5e20"))
    parts.append(_polyline(bound, "#b71c1c", "5 3"))
    for target, thr in zip(targets, thresholds):
        xa, ya = at(0, target)
        xb, _ = at(1, target)
        parts.append(f'<line x1="{xa}" y1="{ya:.1f}" x2="{xb}" y2="{ya:.1f}" '
                     f'stroke="#777" stroke-dasharray="2 3"/>'
                     f'<text x="{xb - 2}" y="{ya - 3:.1f}" font-size="10" '
                     f'text-anchor="end">target {float(target):g}</text>')
        if thr is not None:
            acc = confidence >= thr
            if acc.any():
                x, y = at(acc.mean(), correct[acc].mean())
                parts.append(f'<circle class="certified" cx="{x:.1f}" '
                             f'cy="{y:.1f}" r="4" fill="#000"/>')
    parts.append(f'<text x="{PAD + 6}" y="{H - PAD - 20}" font-size="10" '
                 f'fill="#1b5e20">observed</text><text x="{PAD + 6}" '
                 f'y="{H - PAD - 8}" font-size="10" fill="#b71c1c">lower bound '
                 f"(level {float(level):.3g})</text></svg>")
    return Markup("".join(parts))


STYLE = """
body{font-family:sans-serif;max-width:960px;margin:1.5em auto;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;
padding:3px 8px;font-size:.9em;text-align:left}th{background:#eee}
pre{background:#f6f6f6;padding:.6em;white-space:pre-wrap;font-size:.85em}
figure{display:inline-block;margin:.5em}
@media print{figure{page-break-inside:avoid}}
"""


TEMPLATE = """\
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{{ csp }}">
<meta name="referrer" content="no-referrer">
<title>{{ title }}</title><style>{{ style }}</style></head>
<body><h1>{{ title }}</h1>
{% for heading, blocks in sections %}<section><h2>{{ heading }}</h2>
{% for kind, value in blocks %}
{% if kind == "table" %}<table class="data"><thead><tr>
{%- for c in value[0] %}<th>{{ c }}</th>{% endfor %}</tr></thead><tbody>
{%- for row in value[1] %}<tr>{% for v in row %}<td>{{ v }}</td>{% endfor %}</tr>
{%- endfor %}</tbody></table>
{% elif kind == "p" %}<p>{{ value }}</p>
{% elif kind == "pre" %}<pre>{{ value }}</pre>
{% elif kind == "figure" %}<figure>{{ value }}</figure>
{% endif %}
{% endfor %}</section>
{% endfor %}</body></html>
"""


def _template():
    import jinja2

    env = jinja2.Environment(autoescape=True, trim_blocks=True,
                             lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    return env.from_string(TEMPLATE)


def page(title, sections) -> str:
    """The whole document.

    Parameters
    ----------
    title : str
    sections : list of (heading, blocks)
        ``blocks`` is a list of ``("table", (columns, rows))``, ``("p", text)``,
        ``("pre", text)`` or ``("figure", markup)``; every text is escaped.
    """
    from markupsafe import Markup

    for _, blocks in sections:
        for kind, value in blocks:
            if kind == "figure" and not isinstance(value, Markup):
                raise TypeError("a figure must be markup built by this module")
    return _template().render(csp=Markup(CSP), title=str(title), style=Markup(STYLE),
                              sections=sections)
