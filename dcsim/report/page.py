"""A self-contained HTML page: inline CSS, plots as base64 PNG data URIs, tables as HTML. No network needed."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.85em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th { background: #f4f4f4; } td.text, th.text { text-align: left; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; } p.note { color: #555; font-size: 0.9em; }
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


def format_value(value: Any) -> str:
    """Numbers to 4 significant digits (thousands separated), others as text."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}"
    return str(value)


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

    def key_values(self, rows: dict[str, Any]) -> None:
        """A two-column table of figures."""
        body = "".join(
            f'<tr><td class="text">{html.escape(str(k))}</td><td>{html.escape(format_value(v))}</td></tr>'
            for k, v in rows.items()
        )
        self.parts.append(f'<table><tr><th class="text">figure</th><th>value</th></tr>{body}</table>')

    def table(self, frame: pd.DataFrame, max_rows: int = 50) -> None:
        """A DataFrame as an HTML table (the first ``max_rows`` rows, with a note of how many there are)."""
        shown = frame.head(max_rows)
        text = shown.to_html(index=False, escape=True, na_rep="", float_format=lambda v: f"{v:,.4g}", border=0)
        self.parts.append(f'<div class="scroll">{text}</div>')
        if len(frame) > max_rows:
            self.paragraph(f"first {max_rows} of {len(frame):,} rows", note=True)

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
