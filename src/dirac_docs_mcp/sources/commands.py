"""DIRAC's command reference, rebuilt from the scripts' own text without running them.

The published reference is generated at docs build time from each command's ``--help``.
Here it is approximated statically, as the shared snapshot's ``_generated/commands`` was:
the console scripts come from ``setup.cfg`` (or ``pyproject.toml``), and for each the module
docstring plus the literal ``registerSwitch``/``registerArgument`` calls are read with
:mod:`ast`. DIRAC code is never imported or run; switches defined outside the script module
(e.g. ``dirac-proxy-init -g``) are missing, as they are in the snapshot.
"""

from __future__ import annotations

import ast
import configparser
import inspect
import tomllib
from pathlib import Path

NOTE = (
    "(Reconstructed from {rel}; the published command reference is generated from --help "
    "at docs build time.)"
)


def console_scripts(checkout: Path) -> dict[str, str]:
    """command name -> module (``DIRAC.X.scripts.y``), from setup.cfg and pyproject.toml."""
    scripts: dict[str, str] = {}
    setup_cfg = checkout / "setup.cfg"
    if setup_cfg.is_file():
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read_string(setup_cfg.read_text(errors="replace"))
            raw = parser.get("options.entry_points", "console_scripts", fallback="")
        except configparser.Error:
            raw = ""
        for line in raw.splitlines():
            line = line.split("#", 1)[0].strip()
            if "=" in line:
                name, target = (part.strip() for part in line.split("=", 1))
                scripts[name] = target.split(":", 1)[0].split("[", 1)[0].strip()
    pyproject = checkout / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(errors="replace"))
        except tomllib.TOMLDecodeError:
            data = {}
        for name, target in (data.get("project", {}).get("scripts", {}) or {}).items():
            scripts.setdefault(name, str(target).split(":", 1)[0].strip())
    return scripts


def module_file(checkout: Path, module: str) -> Path | None:
    for base in (checkout / "src", checkout):
        path = base.joinpath(*module.split(".")).with_suffix(".py")
        if path.is_file():
            return path
    return None


def _literal(node: ast.AST) -> object:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr == name:
                found.append(node)
    return sorted(found, key=lambda c: (c.lineno, c.col_offset))


def _switch_line(short: str, long: str, help_text: str) -> str:
    """As DIRAC prints it: ``-s `` then the long form padded to 30, then `` : `` (``name=`` takes a
    value, shown ``<value>``)."""
    short = short.rstrip(":")
    if long.endswith("="):
        long = long[:-1] + " <value>"
    flags = (f"-{short} " if short else "") + (f"--{long}" if long else "").ljust(30)
    return f"  {flags} : {help_text}"


def _argument_lines(call: ast.Call) -> list[str]:
    """One line per registered argument; a tuple (alternatives: one argument or the
    other) on one line, a list (a repeated argument) one line each."""
    value = _literal(call.args[0]) if call.args else None
    if isinstance(value, str):
        return [value]
    if isinstance(value, tuple):
        return [" ".join(v for v in value if isinstance(v, str))]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def command_help(name: str, source: str, rel: str) -> str:
    """The help text of one command from its module source."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        tree = ast.Module(body=[], type_ignores=[])
    doc = inspect.cleandoc(ast.get_docstring(tree, clean=False) or "").strip()
    parts = [f"{name}\n{'=' * len(name)}"]
    if doc:
        parts.append(doc)
    arguments = [
        line for call in _calls(tree, "registerArgument") for line in _argument_lines(call)
    ]
    if arguments:
        parts.append("Arguments:\n\n" + "\n".join(f"  {a}" for a in arguments))
    switches = []
    for call in _calls(tree, "registerSwitch"):
        values = [_literal(a) for a in call.args[:3]]
        if len(values) < 3 or not all(isinstance(v, str) for v in values):
            continue
        switches.append(_switch_line(*values))  # type: ignore[arg-type]
    if switches:
        parts.append("Options:\n\n" + "\n".join(switches))
    parts.append(NOTE.format(rel=rel))
    return "\n\n".join(parts) + "\n"


def build_commands(checkout: Path, folder: str = "_generated/commands") -> dict[str, str]:
    """``{folder}/<command>.txt`` -> help text, for every console script whose module is in
    the checkout."""
    out: dict[str, str] = {}
    for name, module in sorted(console_scripts(checkout).items()):
        path = module_file(checkout, module)
        if path is None:
            continue
        rel = path.relative_to(checkout).as_posix()
        out[f"{folder}/{name}.txt"] = command_help(name, path.read_text(errors="replace"), rel)
    return out
