"""portal/entra must not know Flask (STYLE.md point 3): checked in the source and at import."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import portal.entra

PACKAGE_DIR = pathlib.Path(portal.entra.__path__[0])
MODULES = sorted(PACKAGE_DIR.rglob("*.py"))


def _imported_names(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__":
            names.update(a.value for a in node.args if isinstance(a, ast.Constant))
    return names


def test_there_are_modules_to_check():
    assert len(MODULES) >= 8


def test_no_module_imports_flask_or_werkzeug():
    offenders = {
        str(path.relative_to(PACKAGE_DIR)): sorted(
            n
            for n in _imported_names(path)
            if n.split(".")[0] in {"flask", "werkzeug", "flask_login", "flask_wtf"}
        )
        for path in MODULES
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_importing_every_module_does_not_load_flask():
    names = [
        "portal.entra." + str(p.relative_to(PACKAGE_DIR).with_suffix("")).replace("/", ".")
        for p in MODULES
        if p.name != "__init__.py"
    ]
    # portal/__init__.py (the app factory) imports Flask itself; stand in an empty parent package
    # so that only portal.entra's own imports are measured.
    code = (
        "import importlib, sys, types\n"
        "parent = types.ModuleType('portal')\n"
        f"parent.__path__ = [{str(PACKAGE_DIR.parent)!r}]\n"
        "sys.modules['portal'] = parent\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'werkzeug'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_only_portal_entra_imports_msal():
    """The protocol library stays behind portal.entra: the rest of the portal gets typed
    results (portal.entra.client) and never builds MSAL objects itself."""
    portal_dir = PACKAGE_DIR.parent
    offenders = sorted(
        str(path.relative_to(portal_dir))
        for path in portal_dir.rglob("*.py")
        if PACKAGE_DIR not in path.parents
        and any(n.split(".")[0] == "msal" for n in _imported_names(path))
    )
    assert offenders == []
