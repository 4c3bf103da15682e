"""Where a document's key in the index comes from: one design for every way of indexing.

Every indexed root is registered in the index meta with a *prefix*. A document's key (its
``source``, what ``dirac-docs://`` links, ``source_prefix`` filters, eval sets and Q-A
resume state use) is ``prefix/path-relative-to-its-root``, or just the relative path when
the prefix is empty:

- the first root indexed into an empty index, alone, gets no prefix, so
  ``index ../shared/corpus`` keeps its ``DIRAC/docs/...`` keys (and an index written before
  prefixes existed reads as roots without prefix: it keeps working unchanged);
- any other new root gets its folder name as prefix (``docs``, ``docs-2`` if taken, never a
  top-level name another root already uses), so ``index A B`` with a ``README.md`` in each
  keeps ``A/README.md`` and ``B/README.md``;
- a doc set synced by ``dirac-docs-mcp sources`` registers its checkout with an explicit
  prefix (``DIRAC``, ``diracx``...: the same keys as the shared snapshot);
- a path inside an already registered root (a subfolder, one file) is keyed relative to
  that root and only documents under that path are added, updated or deleted, so
  ``index DIR`` then ``index DIR/a.md`` re-keys nothing and keeps the rest of ``DIR``.

Each chunk also carries its *doc set* (the synced set's name, else the key's top-level
folder, else the root's folder name) and the doc set's version (a synced tag or commit).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError


@dataclass
class RootSpec:
    """A root registered with an explicit namespace (a synced doc set)."""

    path: Path
    prefix: str
    doc_set: str = ""
    version: str = ""


@dataclass
class Scope:
    """One thing to walk: a registered ``root`` or something inside it (``rel``)."""

    root: Path
    target: Path
    rel: str  # target relative to root, "" for the whole root
    prefix: str
    doc_set: str = ""
    version: str = ""

    def key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def covers(self, rel: str) -> bool:
        return not self.rel or rel == self.rel or rel.startswith(self.rel + "/")

    def doc_set_of(self, key: str) -> str:
        if self.doc_set:
            return self.doc_set
        return key.split("/", 1)[0] if "/" in key else (self.root.name or "root")


def taken_names(
    info: Mapping[str, Mapping[str, Any]], top_levels: Mapping[str, set[str]], exclude: str = ""
) -> dict[str, str]:
    """Top-level key names in use -> the root using them (prefixes, and the top-level names
    of roots without prefix)."""
    taken: dict[str, str] = {}
    for root, entry in info.items():
        if root == exclude:
            continue
        prefix = entry.get("prefix") or ""
        if prefix:
            taken[prefix] = root
        else:
            for name in top_levels.get(root, ()):
                taken.setdefault(name, root)
    return taken


def _unique(name: str, taken: Mapping[str, str]) -> str:
    name = name or "root"
    if name not in taken:
        return name
    n = 2
    while f"{name}-{n}" in taken:
        n += 1
    return f"{name}-{n}"


def _owner(path: Path, roots: Sequence[Path]) -> Path | None:
    best = None
    for root in roots:
        if path == root or path.is_relative_to(root):
            if best is None or len(root.parts) > len(best.parts):
                best = root
    return best


def plan(
    paths: Sequence[Path],
    specs: Sequence[RootSpec],
    info: dict[str, dict[str, Any]],
    top_levels: Mapping[str, set[str]],
) -> list[Scope]:
    """The scopes to index for ``paths`` (resolved) and ``specs``; registers new roots in
    ``info`` (updated in place). ``top_levels``: each registered root's top-level key
    names, for choosing prefixes that collide with nothing."""
    scopes: list[Scope] = []
    for spec in specs:
        root = spec.path.resolve()
        taken = taken_names(info, top_levels, exclude=str(root))
        if spec.prefix in taken:
            raise InvalidInputError(
                f"documents under '{spec.prefix}/' are already indexed from {taken[spec.prefix]}; "
                f"use another index (--index DIR) for the synced doc sets, or start this one "
                f"over with 'dirac-docs-mcp sources sync --rebuild'"
            )
        info[str(root)] = {"prefix": spec.prefix, "doc_set": spec.doc_set, "version": spec.version}
        scopes.append(Scope(root, root, "", spec.prefix, spec.doc_set, spec.version))

    registered = [Path(r) for r in info]
    owned: list[tuple[Path, Path]] = []
    loose: list[Path] = []
    for path in paths:
        owner = _owner(path, registered)
        if owner is not None:
            owned.append((owner, path))
        else:
            loose.append(path)
    candidates = sorted({p if p.is_dir() else p.parent for p in loose}, key=lambda p: len(p.parts))
    new_roots: list[Path] = []
    for candidate in candidates:
        if _owner(candidate, new_roots) is None:
            new_roots.append(candidate)
    alone = not info and len(new_roots) == 1
    for root in new_roots:
        prefix = "" if alone else _unique(root.name, taken_names(info, top_levels))
        info[str(root)] = {"prefix": prefix, "doc_set": "", "version": ""}
    owned += [(_owner(p, new_roots), p) for p in loose]  # type: ignore[misc]

    for root, path in owned:
        entry = info[str(root)]
        rel = "" if path == root else path.relative_to(root).as_posix()
        scopes.append(
            Scope(
                root,
                path,
                rel,
                entry.get("prefix") or "",
                entry.get("doc_set") or "",
                entry.get("version") or "",
            )
        )
    return scopes
