"""Live regions are templates of their own (portal/regions.py): each root carries its id and
swaps out of band only when rendered so; a region inside another is swapped with its parent."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

TEMPLATES = Path(__file__).resolve().parents[1] / "portal" / "templates"
OOB = '{% if oob %} hx-swap-oob="true"{% endif %}'


def _root(text: str) -> str:
    """The first element's opening tag, comments and imports skipped."""
    body = re.sub(r"\{#.*?#\}", "", text, flags=re.S)
    match = re.search(r"<(?!/)[a-z]+\b[^>]*>", body, flags=re.S)
    assert match, "a region has a root element"
    return match.group(0)


def region_templates() -> list[Path]:
    """Every ``<blueprint>/_name.html`` whose root element has an id."""
    found = []
    for path in sorted(TEMPLATES.glob("*/_*.html")):
        if re.search(r'\bid="', _root(path.read_text())):
            found.append(path)
    return found


def test_the_regions_are_found():
    names = {f"{p.parent.name}/{p.name}" for p in region_templates()}
    assert {
        "connection/_list.html",
        "connection/_status.html",
        "connection/_checklist.html",
        "wizard/_cloud.html",
        "wizard/_ids_status.html",
        "wizard/_format.html",
        "link/_panel.html",
        "support/_table.html",
        "support/_status.html",
    } <= names


@pytest.mark.parametrize("path", region_templates(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_region_root_carries_its_id_and_swaps_out_of_band_only_when_asked(path):
    text = path.read_text()
    root = _root(text)
    assert OOB in root, root
    assert "{% block" not in text  # a region is a file, not a block of a page


def test_a_region_inside_a_region_says_whether_it_swaps_on_its_own():
    regions = {f"{p.parent.name}/{p.name}" for p in region_templates()}
    for path in region_templates():
        text = path.read_text()
        for match in re.finditer(r'\{% include "([^"]+)" %\}', text):
            if match.group(1) in regions:
                opening = re.search(r"\{% with ([^%]*) %\}\s*$", text[: match.start()])
                # oob=false, or oob=true for a region that is meant to swap on its own
                assert opening and "oob=" in opening.group(1), (path.name, match[1])


def test_no_page_keeps_a_hidden_block():
    for path in TEMPLATES.rglob("*.html"):
        assert "{% if false %}" not in path.read_text(), path
