"""Tests that keep the documentation honest, in the manner of datasette's ``test_docs.py``.

- Every hook of ``xfr/hookspecs.py`` is documented in ``docs/hooks.md`` (and nothing else is).
- The repository stands on its own (issue 17): no file cites design or reference notes that
  live outside it; every ``docs/*.md`` page that a file names exists, and every section cited
  as ``docs/<page>.md, "<section>"`` is a heading of that page.
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from xfr import hookspecs, registry

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "hooks.md"


def hookspec_names() -> list[str]:
    marker = f"{hookspecs.PROJECT_NAME}_spec"
    return sorted(
        name
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(fn, marker)
    )


def sections() -> dict[str, str]:
    """``{hook: its section text}`` for every ``### xfr_...`` heading."""
    text = DOCS.read_text()
    parts = re.split(r"^### (xfr_\w+)[ \t]*$", text, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1].split("\n## ")[0] for i in range(1, len(parts), 2)}


def test_the_hookspec_module_defines_hooks() -> None:
    assert len(hookspec_names()) == 5


@pytest.mark.parametrize("hook", hookspec_names())
def test_every_hook_is_documented(hook: str) -> None:
    assert hook in sections(), f"{hook} has no '### {hook}' section in {DOCS}"


def test_no_documented_hook_is_missing_from_the_hookspecs() -> None:
    assert sorted(sections()) == hookspec_names()


@pytest.mark.parametrize("hook", hookspec_names())
def test_each_hook_section_names_its_kind_and_shows_an_implementation(hook: str) -> None:
    kind = next(k for k, h in registry.HOOKS.items() if h == hook)
    section = sections()[hook]
    assert f"Kind `{kind}`" in section
    assert "@xfr.hookimpl" in section and f"def {hook}():" in section


def test_the_disable_variable_and_every_kind_are_documented() -> None:
    text = DOCS.read_text()
    assert registry.ENV_DISABLE in text
    for kind in registry.KINDS:
        assert f"`{kind}`" in text


# -- the repository stands on its own (issue 17) --------------------------------------------

#: Notes that were kept beside the repository, never in it: a citation of them cannot be
#: followed from a checkout. Written in parts so that this file does not cite them itself.
OUTSIDE_NOTES = re.compile(rb"\b(?:" + b"|".join([b"DESIGN", b"REFERENCE"]) + rb")\.md\b")
#: A docs page named anywhere: ``docs/method.md``.
DOCS_PAGE = re.compile(r"\bdocs/([\w-]+\.md)\b")
#: A docs page and the sections cited after it: ``docs/method.md, "Targets" and "Precision"``.
DOCS_SECTIONS = re.compile(r'\bdocs/([\w-]+\.md),? +((?:"[^"\n]+"(?:, *| +and +)?)+)')
#: Folders that are never part of the repository's own text.
NOT_SOURCE = {".git", ".venv", "build", "dist", "__pycache__", ".pytest_cache", ".ruff_cache",
              ".hypothesis", ".benchmarks", ".mypy_cache", "runs", "cache", "xfr-explanation"}
#: Where a ``docs/*.md`` path is a citation that must resolve. CHANGELOG.md is left out: it may
#: name pages that were later renamed or removed.
CITING = ("xfr", "plugins", "tests", "csrc", "benchmarks", "examples", "docs", "reports",
          "README.md")


@cache
def repository_files() -> list[Path]:
    """The files of the repository: tracked or new but not ignored (``git ls-files``), or, in a
    copy without git, every file outside the build and cache folders."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT, capture_output=True, check=True, timeout=60,
        ).stdout
        files = [ROOT / os.fsdecode(p) for p in out.split(b"\0") if p]
    except (OSError, subprocess.SubprocessError):
        files = [p for p in ROOT.rglob("*")
                 if not NOT_SOURCE & set(p.relative_to(ROOT).parts[:-1])]
    return sorted(p for p in files if p.is_file())


def text_files(under: tuple[str, ...] | None = None) -> Iterator[tuple[Path, str]]:
    """``(path, text)`` of every UTF-8 text file of the repository (under ``under``)."""
    for path in repository_files():
        rel = path.relative_to(ROOT)
        if under is not None and rel.parts[0] not in under:
            continue
        data = path.read_bytes()
        if b"\0" in data:
            continue
        try:
            yield rel, data.decode("utf-8")
        except UnicodeDecodeError:
            continue


def headings(page: str) -> list[str]:
    """The heading texts of ``docs/<page>``."""
    text = (ROOT / "docs" / page).read_text(encoding="utf-8")
    return [line.lstrip("#").strip() for line in text.splitlines() if re.match(r"#+ ", line)]


def is_heading(section: str, titles: list[str]) -> bool:
    """``section`` is a heading, or the start of one (``"Smoothing"`` for ``Smoothing (Sec.
    3.1)``)."""
    return any(t == section or (t.startswith(section) and t[len(section)] in " (:,")
               for t in titles)


@cache
def cited_pages() -> dict[str, list[str]]:
    """``{page: [where it is named, "file:line"]}`` over the citing files."""
    found: dict[str, list[str]] = {}
    for rel, text in text_files(CITING):
        for n, line in enumerate(text.splitlines(), start=1):
            for page in DOCS_PAGE.findall(line):
                found.setdefault(page, []).append(f"{rel}:{n}")
    return found


@cache
def cited_sections() -> dict[tuple[str, str], list[str]]:
    """``{(page, section): [where it is cited]}`` for ``docs/<page>.md, "<section>"`` citations."""
    found: dict[tuple[str, str], list[str]] = {}
    for rel, text in text_files(CITING):
        for m in DOCS_SECTIONS.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            for section in re.findall(r'"([^"\n]+)"', m.group(2)):
                found.setdefault((m.group(1), section), []).append(f"{rel}:{line}")
    return found


def test_the_repository_files_are_found() -> None:
    files = {p.relative_to(ROOT).as_posix() for p in repository_files()}
    assert {"README.md", "docs/method.md", "docs/design.md", "xfr/registry.py",
            "tests/test_docs.py"} <= files


def test_no_file_cites_notes_that_live_outside_the_repository() -> None:
    """Design and reference facts are cited from the paper (Sec., eq.) or from ``docs/``."""
    me = Path(__file__).resolve()
    offenders = []
    for path in repository_files():
        if path.resolve() == me:
            continue
        for n, line in enumerate(path.read_bytes().splitlines(), start=1):
            if OUTSIDE_NOTES.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: "
                                 f"{line.decode('utf-8', 'replace').strip()}")
    assert not offenders, (
        "these lines cite notes that are not in the repository; cite the paper's section or "
        "equation, or a page of docs/ (write the fact there first):\n" + "\n".join(offenders))


def test_the_docs_pages_the_code_relies_on_are_cited() -> None:
    """The scan below works: the pages that code comments cite most are found."""
    assert {"method.md", "hooks.md", "design.md"} <= set(cited_pages())


@pytest.mark.parametrize("page", sorted(cited_pages()))
def test_every_cited_docs_page_exists(page: str) -> None:
    where = cited_pages()[page]
    assert (ROOT / "docs" / page).is_file(), (
        f"docs/{page} is cited but does not exist: {', '.join(where)}")


@pytest.mark.parametrize(("page", "section"), sorted(cited_sections()))
def test_every_cited_docs_section_exists(page: str, section: str) -> None:
    where = cited_sections()[(page, section)]
    assert (ROOT / "docs" / page).is_file(), f"docs/{page} does not exist: {', '.join(where)}"
    assert is_heading(section, headings(page)), (
        f'docs/{page} has no heading "{section}", cited at {", ".join(where)}; '
        f"its headings: {headings(page)}")
