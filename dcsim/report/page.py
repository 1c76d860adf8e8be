"""A self-contained HTML page: inline CSS, plots as base64 PNG data URIs, tables as HTML. No network needed."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from dcsim.formatting import format_figure, label_of
from dcsim.report.tables import readable_table

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em auto; max-width: 1100px;
       color: #222; padding: 0 1em; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h3 { font-size: 1.05em; margin: 0.8em 0 0.3em; }
h2 { font-size: 1.25em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.4em 0; font-size: 0.85em; max-width: 100%; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.5em; text-align: right; overflow-wrap: anywhere; }
th { background: #f4f4f4; vertical-align: bottom; overflow-wrap: normal; } td.text, th.text { text-align: left; }
.cards { display: flex; flex-wrap: wrap; gap: 0.6em; margin: 0.8em 0; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 0.45em 0.8em; min-width: 8.5em; background: #fafafa; }
.card .value { font-size: 1.35em; font-weight: 600; } .card .label { font-size: 0.8em; color: #555; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(330px, 1fr)); gap: 0 1.5em; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; } p.note { color: #555; font-size: 0.9em; }
details { margin: 0.5em 0; } summary { cursor: pointer; font-weight: 600; }
.scroll { overflow-x: auto; }
"""


def png_data_uri(data: bytes) -> str:
    """A ``data:image/png;base64,...`` URI of PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def figure_png(fig: Any) -> bytes:
    """A matplotlib figure as PNG bytes (the figure is closed)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


@dataclass
class Page:
    """An HTML page built section by section; :meth:`html` renders it."""

    title: str
    parts: list[str] = field(default_factory=list)

    def heading(self, text: str) -> None:
        """A section heading."""
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def paragraph(self, text: str, note: bool = False) -> None:
        """A paragraph of plain text (escaped)."""
        css = ' class="note"' if note else ""
        self.parts.append(f"<p{css}>{html.escape(text)}</p>")

    def cards(self, figures: list[tuple[str, str]]) -> None:
        """Headline figures as cards: (label, value already formatted) each."""
        body = "".join(
            f'<div class="card"><div class="value">{html.escape(value)}</div>'
            f'<div class="label">{html.escape(label)}</div></div>'
            for label, value in figures
        )
        self.parts.append(f'<div class="cards">{body}</div>')

    def key_values(self, rows: dict[str, Any], title: str | None = None) -> str:
        """A two-column table of figures: each name as words (the name itself on hover), its value in human
        units (:func:`dcsim.formatting.format_figure`). Added to the page unless ``title`` is given:
        then returned as a titled block for :meth:`grid`."""
        body = "".join(
            f'<tr><td class="text" title="{html.escape(str(k), quote=True)}">{html.escape(label_of(str(k)))}</td>'
            f"<td>{html.escape(format_figure(str(k), v))}</td></tr>"
            for k, v in rows.items()
        )
        table = f'<table><tr><th class="text">figure</th><th>value</th></tr>{body}</table>'
        if title is None:
            self.parts.append(table)
            return table
        return f"<div><h3>{html.escape(title)}</h3>{table}</div>"

    def grid(self, blocks: list[str]) -> None:
        """Blocks (from :meth:`key_values` with a title) side by side as the page width allows."""
        self.parts.append(f'<div class="grid">{"".join(blocks)}</div>')

    def table(self, frame: pd.DataFrame, max_rows: int = 50, title: str | None = None) -> None:
        """A DataFrame as an HTML table in human units (:func:`dcsim.report.tables.readable_table`: identity
        and status columns first), the first ``max_rows`` rows with a note of how many there are; folded
        under ``title`` (a ``<details>`` block, closed) when one is given."""
        shown = readable_table(frame.head(max_rows))
        text = shown.to_html(index=False, escape=True, na_rep="", border=0)
        block = f'<div class="scroll">{text}</div>'
        if len(frame) > max_rows:
            block += f'<p class="note">first {max_rows} of {len(frame):,} rows</p>'
        if title is not None:
            block = f"<details><summary>{html.escape(title)}</summary>{block}</details>"
        self.parts.append(block)

    def image(self, png: bytes, caption: str) -> None:
        """An embedded PNG with a caption."""
        alt = html.escape(caption, quote=True)
        image = f'<img src="{png_data_uri(png)}" alt="{alt}"/>'
        self.parts.append(f"<figure>{image}<figcaption>{html.escape(caption)}</figcaption></figure>")

    def html(self) -> str:
        """The whole page."""
        body = "\n".join(self.parts)
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8"/>\n'
            f"<title>{html.escape(self.title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
            f"<h1>{html.escape(self.title)}</h1>\n{body}\n</body>\n</html>\n"
        )
