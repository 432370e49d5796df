"""A small Markdown-to-HTML converter for the report files xfr writes itself (``table1.md``,
``deletion.md``, ``accuracy.md``, ``sanity.md``): headings, paragraphs, ``- `` lists, pipe
tables (with right-aligned ``---:`` columns), ``**bold**``, ``*italic*`` and ```code```. It is
not a general Markdown implementation; everything is HTML-escaped first."""

from __future__ import annotations

import html
import re

_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_ITALIC = re.compile(r"(?<![\w*])\*([^*\s][^*]*?)\*(?![\w*])")


def inline(text: str) -> str:
    """Escape ``text`` and turn code spans, bold and italic into HTML."""
    parts = _CODE.split(text)
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(f"<code>{html.escape(part)}</code>")
            continue
        s = html.escape(part, quote=False)
        s = _BOLD.sub(r"<strong>\1</strong>", s)
        s = _ITALIC.sub(r"<em>\1</em>", s)
        out.append(s)
    return "".join(out)


def _cells(line: str) -> list[str]:
    s = line.strip()
    if s.startswith("|"):
        s = s[1:]
    if s.endswith("|"):
        s = s[:-1]
    return [c.strip() for c in s.split("|")]


def _table(lines: list[str]) -> str:
    head = _cells(lines[0])
    body = lines[1:]
    align = ["left"] * len(head)
    if body and re.fullmatch(r"\|?[\s:\-|]+\|?", body[0].strip()):
        align = ["right" if c.endswith(":") else "left" for c in _cells(body[0])]
        align += ["left"] * (len(head) - len(align))
        body = body[1:]
    out = ['<div class="table-wrap"><table class="md">', "<thead><tr>"]
    out += [f'<th style="text-align:{a}">{inline(c)}</th>' for c, a in zip(head, align,
                                                                              strict=False)]
    out.append("</tr></thead><tbody>")
    for line in body:
        cells = _cells(line)
        out.append("<tr>" + "".join(
            f'<td style="text-align:{align[i] if i < len(align) else "left"}">{inline(c)}</td>'
            for i, c in enumerate(cells)) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def to_html(text: str, shift: int = 1) -> str:
    """``text`` (Markdown as xfr writes it) as an HTML fragment; headings are moved down by
    ``shift`` levels (``#`` becomes ``<h2>`` by default) to sit under the page's title."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if not stripped:
            i += 1
            continue
        m = re.match(r"(#{1,6})\s+(.*)", stripped)
        if m:
            level = min(6, len(m.group(1)) + shift)
            out.append(f"<h{level}>{inline(m.group(2))}</h{level}>")
            i += 1
            continue
        if stripped.startswith("|"):
            block = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                block.append(lines[i])
                i += 1
            out.append(_table(block))
            continue
        if re.match(r"[-*]\s+", stripped):
            items: list[str] = []
            while i < len(lines) and lines[i].strip():
                s = lines[i].strip()
                if re.match(r"[-*]\s+", s):
                    items.append(s[2:].strip())
                elif items:  # a continuation line of the previous item
                    items[-1] += " " + s
                i += 1
            out.append("<ul>" + "".join(f"<li>{inline(t)}</li>" for t in items) + "</ul>")
            continue
        para = []
        while (i < len(lines) and lines[i].strip() and not lines[i].strip().startswith(("|", "#"))
               and not re.match(r"[-*]\s+", lines[i].strip())):
            para.append(lines[i].strip())
            i += 1
        out.append(f"<p>{inline(' '.join(para))}</p>")
    return "\n".join(out)


__all__ = ["inline", "to_html"]
