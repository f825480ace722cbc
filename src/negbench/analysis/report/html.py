"""The report document: one builder writing Markdown and self-contained HTML side by side (every
image a base64 data URI, no script, no network), and the gallery cards."""
from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from negbench.analysis.report.gallery import Gallery
from negbench.core.io import write_bytes_atomic

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1150px;
     padding:0 1em;color:#222;line-height:1.45}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2.2em}
h3{margin-top:1.4em}
table{border-collapse:collapse;margin:.8em 0;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4} img.fig{max-width:100%;max-height:92vh;height:auto;display:block;margin:.6em 0}
.note{color:#555;font-size:13px} .empty{color:#888;font-style:italic}
.story{font-size:15px} .story li{margin:.25em 0}
.published{background:#fff8e6;border:2px dashed #d9a400;padding:.2em 1em 1em;margin-top:2em}
.gallery{display:flex;flex-wrap:wrap;gap:12px}
.card{border:1px solid #ddd;border-radius:6px;padding:8px;width:250px;font-size:12.5px}
.card img{width:224px;height:auto;display:block;margin-bottom:6px;image-rendering:pixelated}
.card ol{padding-left:1.4em;margin:.3em 0} .card li{margin:2px 0}
.chosen{background:#fde2e1} .correct{background:#dff3e0} .tag{font-size:11px;color:#555}
.footnote{font-size:12px;color:#555;border-top:1px solid #ddd;margin-top:2em;padding-top:.5em}
"""


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    h = "".join(f"<th>{html.escape(str(c))}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"


@dataclass
class Doc:
    sections: dict[str, str]
    md: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)

    def section(self, key: str) -> None:
        title = self.sections[key]
        self.md.append(f"\n## {title}\n")
        self.html.append(f'<h2 id="{key}">{html.escape(title)}</h2>')

    def sub(self, title: str) -> None:
        self.md.append(f"\n### {title}\n")
        self.html.append(f"<h3>{html.escape(title)}</h3>")

    def para(self, text: str, cls: str = "note") -> None:
        self.md.append(text + "\n")
        self.html.append(f'<p class="{cls}">{html.escape(text)}</p>')

    def bullets(self, items: Sequence[str], cls: str = "story") -> None:
        self.md.append("\n".join(f"- {s}" for s in items) + "\n")
        self.html.append(f'<ul class="{cls}">' + "".join(f"<li>{html.escape(s)}</li>" for s in items) + "</ul>")

    def table(self, header, rows) -> None:
        self.md.append(md_table(header, rows) + "\n")
        self.html.append(html_table(header, rows))

    def figure(self, png: Path | None, alt: str) -> None:
        if png is None:
            return
        self.md.append(f"![{alt}]({png.name})\n")
        data = base64.b64encode(png.read_bytes()).decode()
        self.html.append(f'<img class="fig" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">')

    def raw(self, html_text: str, md_text: str = "") -> None:
        self.html.append(html_text)
        if md_text:
            self.md.append(md_text)

    def page(self, title: str, toc: bool = True) -> str:
        links = " · ".join(f'<a href="#{k}">{html.escape(v)}</a>' for k, v in self.sections.items())
        body = [self.html[0], f'<p class="note">{links}</p>'] + self.html[1:] if toc else self.html
        return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
                + "\n".join(body) + "</body></html>\n")


def _card(it, type_name, before_label: str, after_label: str | None) -> str:
    lis = []
    for i, (opt, t) in enumerate(zip(it.options, it.option_types)):
        marks = (["correct"] if i == it.correct else []) + ([f"{before_label} chose"] if i == it.chosen else []) \
            + ([f"{after_label} chose"] if after_label and it.chosen_after == i else [])
        cls = "correct" if i == it.correct else ("chosen" if i == it.chosen else "")
        tag = f"{type_name(t)}" + (f"; {', '.join(marks)}" if marks else "")
        lis.append(f'<li class="{cls}">{html.escape(opt)} <span class="tag">[{html.escape(tag)}]</span></li>')
    img = '<div class="tag">(no preview)</div>'
    if it.thumbnail_png:
        img = f'<img alt="{html.escape(it.media)}" src="data:image/png;base64,{base64.b64encode(it.thumbnail_png).decode()}">'
    return (f'<div class="card">{img}<div class="tag">{html.escape(it.task)} row {it.row} · question type: '
            f'{html.escape(type_name(it.question_type))}</div><ol start="0">' + "".join(lis) + "</ol></div>")


def gallery_block(doc: Doc, out: Path, g: Gallery, type_name, before_label: str, after_label: str | None) -> None:
    """One gallery as cards (HTML) and a table (Markdown); thumbnails also saved as PNG files."""
    if not g.items:
        doc.para(f"{g.dataset}: no question is {g.kind}.", "empty")
        return
    md_rows = []
    for k, it in enumerate(g.items):
        img_md = "(no preview)"
        if it.thumbnail_png:
            f = out / "gallery" / f"{g.dataset.lower().replace(' ', '_')}_{g.kind.replace(' ', '_')}_{k:02d}.png"
            write_bytes_atomic(f, it.thumbnail_png)
            img_md = f"![{it.media}](gallery/{f.name})"
        opts = "<br>".join(f"{i}. {o}" for i, o in enumerate(it.options))
        md_rows.append([img_md, f"{it.task} row {it.row}", opts, str(it.correct), str(it.chosen)]
                       + ([str(it.chosen_after)] if after_label else []))
    cards = "".join(_card(it, type_name, before_label, after_label) for it in g.items)
    header = ["image", "item", "options", "correct", f"{before_label} chose"] + \
        ([f"{after_label} chose"] if after_label else [])
    doc.raw(f'<div class="gallery">{cards}</div>', md_table(header, md_rows) + "\n")
