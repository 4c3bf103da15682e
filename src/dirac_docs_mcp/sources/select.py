"""Which files of a checkout are taken, and the folder that is indexed.

Patterns are paths relative to the repository root with ``*`` (within one folder), ``?``
and ``**`` (any number of folders). The taken files are copied, keeping their relative
paths, into the doc set's ``docs`` folder; a file that is no longer taken (deleted or
renamed upstream) is removed from it, so the incremental index follows.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    pattern = pattern.strip("/")
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def matches(rel: str, patterns: Iterable[str]) -> bool:
    return any(_regex(p).fullmatch(rel) for p in patterns)


def taken_files(checkout: Path, include: Iterable[str], exclude: Iterable[str] = ()) -> list[str]:
    """Relative paths (sorted) of the non-empty regular files matching ``include`` and not
    ``exclude``; hidden folders (``.git``) and symlinks are never taken."""
    include, exclude = list(include), list(exclude)
    found = []
    for dirpath, dirnames, filenames in os.walk(checkout, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(checkout).as_posix()
            if not matches(rel, include) or matches(rel, exclude):
                continue
            if path.is_symlink() or not path.is_file() or path.stat().st_size == 0:
                continue  # empty placeholders say nothing
            found.append(rel)
    return sorted(found)


def mirror_tree(
    target: Path, checkout: Path, files: Iterable[str], generated: Mapping[str, str]
) -> dict[str, int]:
    """Make ``target`` hold exactly ``files`` (copied from ``checkout``) and ``generated``
    (relative path -> text). Unchanged files are not rewritten. Returns counts."""
    wanted: dict[str, bytes] = {rel: (checkout / rel).read_bytes() for rel in files}
    wanted.update({rel: text.encode() for rel, text in generated.items()})
    counts = {"added": 0, "changed": 0, "removed": 0, "unchanged": 0}
    target.mkdir(parents=True, exist_ok=True)
    for dirpath, _dirnames, filenames in os.walk(target, topdown=False):
        for name in filenames:
            path = Path(dirpath) / name
            if path.relative_to(target).as_posix() not in wanted:
                path.unlink()
                counts["removed"] += 1
        if Path(dirpath) != target and not any(Path(dirpath).iterdir()):
            Path(dirpath).rmdir()
    for rel, data in wanted.items():
        path = target / rel
        if path.is_file():
            if path.read_bytes() == data:
                counts["unchanged"] += 1
                continue
            counts["changed"] += 1
        else:
            counts["added"] += 1
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp-sync")
        tmp.write_bytes(data)
        tmp.replace(path)
    return counts
