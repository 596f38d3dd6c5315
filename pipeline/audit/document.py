"""A tiny document model rendered to both Markdown and self-contained HTML.

The model card needs the same content in two formats; building it once as blocks and rendering
twice keeps them from drifting apart. Text is escaped for each format.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field


@dataclass
class Table:
    header: list[str]
    rows: list[list[object]]
    caption: str = ""


@dataclass
class Figure:
    svg: str
    caption: str


@dataclass
class Section:
    title: str
    blocks: list[object] = field(default_factory=list)  # str paragraphs, list bullets, Table

    def add(self, *blocks: object) -> Section:
        self.blocks.extend(blocks)
        return self


def _cell(v: object) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(title: str, sections: list[Section]) -> str:
    out = [f"# {title}", ""]
    for s in sections:
        out += [f"## {s.title}", ""]
        for b in s.blocks:
            if isinstance(b, Table):
                if b.caption:
                    out += [f"*{_md_escape(b.caption)}*", ""]
                out.append("| " + " | ".join(_md_escape(h) for h in b.header) + " |")
                out.append("|" + "---|" * len(b.header))
                out += ["| " + " | ".join(_md_escape(_cell(c)) for c in r) + " |" for r in b.rows]
            elif isinstance(b, Figure):
                data = base64.b64encode(b.svg.encode()).decode()
                out.append(f"![{_md_escape(b.caption)}](data:image/svg+xml;base64,{data})")
            elif isinstance(b, list):
                out += [f"- {_md_escape(str(i))}" for i in b]
            else:
                out.append(str(b))
            out.append("")
    return "\n".join(out).rstrip() + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;
margin:2rem auto;padding:0 1rem;color:#1f2328;line-height:1.45}
h1{border-bottom:2px solid #d0d7de;padding-bottom:.3rem}h2{margin-top:2rem;color:#0b4f8a}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
th,td{border:1px solid #d0d7de;padding:.25rem .6rem;text-align:left}
th{background:#f6f8fa}caption{caption-side:top;text-align:left;font-style:italic;
padding:.3rem 0}.pass{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:600}
.warn{color:#9a6700;font-weight:600}figure{margin:1rem 0}figcaption{font-style:italic}
"""

_STATUS = {"PASS": "pass", "FAIL": "fail", "VALIDATED": "pass", "REJECTED": "fail",
           "WARN": "warn", "EXCLUDED": "warn"}


def _html_cell(v: object) -> str:
    text = html.escape(_cell(v))
    cls = _STATUS.get(_cell(v))
    return f'<span class="{cls}">{text}</span>' if cls else text


def to_html(title: str, sections: list[Section]) -> str:
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
           f"<h1>{html.escape(title)}</h1>"]
    for s in sections:
        out.append(f"<section><h2>{html.escape(s.title)}</h2>")
        for b in s.blocks:
            if isinstance(b, Table):
                out.append("<table>")
                if b.caption:
                    out.append(f"<caption>{html.escape(b.caption)}</caption>")
                out.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in b.header)
                           + "</tr>")
                out += ["<tr>" + "".join(f"<td>{_html_cell(c)}</td>" for c in r) + "</tr>"
                        for r in b.rows]
                out.append("</table>")
            elif isinstance(b, Figure):
                out.append(f"<figure>{b.svg}<figcaption>{html.escape(b.caption)}"
                           "</figcaption></figure>")
            elif isinstance(b, list):
                out.append("<ul>" + "".join(f"<li>{html.escape(str(i))}</li>" for i in b)
                           + "</ul>")
            else:
                out.append(f"<p>{html.escape(str(b))}</p>")
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
