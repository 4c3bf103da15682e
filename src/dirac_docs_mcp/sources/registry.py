"""The doc sets: the five DIRACGrid ones, those a user added, and what was synced.

State lives in ``<data dir>/sources/sources.json``; each set's checkout in
``<data dir>/sources/<name>/repo`` and the files taken from it (the indexed root, keyed
``<name>/...``) in ``<data dir>/sources/<name>/docs``.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError, NotFoundError

#: the DIRAC docs build files the command reference is rebuilt from (sparse only, not indexed)
COMMAND_SOURCES = ["setup.cfg", "pyproject.toml", "src/DIRAC/**/scripts/*.py"]


@dataclass
class DocSet:
    name: str  # also the key prefix (``DIRAC/docs/...``) and the doc_set label
    url: str  # git URL, local repository or plain folder
    include: list[str]
    exclude: list[str] = field(default_factory=list)
    commands: bool = False  # rebuild DIRAC's _generated/commands from the scripts
    user: bool = False
    ref: str | None = None  # pinned tag/branch/commit; None: the default branch

    @property
    def repo_name(self) -> str:
        tail = self.url.rstrip("/").rsplit("/", 1)[-1]
        return tail[:-4] if tail.endswith(".git") else tail

    def sparse(self) -> list[str]:
        return list(self.include) + (COMMAND_SOURCES if self.commands else [])

    def taken(self) -> str:
        what = ", ".join(self.include)
        if self.exclude:
            what += " (not " + ", ".join(self.exclude) + ")"
        if self.commands:
            what += "; command reference from the scripts"
        return what


_GH = "https://github.com/DIRACGrid/"

#: what the shared snapshot holds (../shared/corpus/SOURCES.md), per repository
KNOWN: dict[str, DocSet] = {
    s.name: s
    for s in (
        DocSet(
            "DIRAC",
            _GH + "DIRAC.git",
            [
                "docs/source/**/*.rst",
                "docs/source/**/*.cfg",
                "README.rst",
                "dirac.cfg",
                "src/DIRAC/*/ConfigTemplate.cfg",
            ],
            ["docs/source/_static/**", "docs/source/_templates/**", "**/images/**"],
            commands=True,
        ),
        DocSet("diracx", _GH + "diracx.git", ["docs/**/*.md", "README.md"]),
        DocSet("DIRACOS2", _GH + "DIRACOS2.git", ["README.md"]),
        DocSet("Pilot", _GH + "Pilot.git", ["README.md"]),
        DocSet("WebAppDIRAC", _GH + "WebAppDIRAC.git", ["README.rst"]),
    )
}

DEFAULT_INCLUDE = ["**/*.rst", "**/*.md", "**/*.txt", "**/*.cfg", "**/*.pdf"]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass
class Synced:
    version: str
    commit: str
    url: str


class Registry:
    def __init__(self, data_dir: Path):
        self.base = Path(data_dir) / "sources"
        self.file = self.base / "sources.json"
        raw: dict[str, Any] = {}
        if self.file.is_file():
            try:
                raw = json.loads(self.file.read_text())
            except (OSError, ValueError) as exc:
                raise InvalidInputError(f"{self.file} is unreadable ({exc}); remove it") from None
        self.user: dict[str, DocSet] = {
            k: DocSet(**v) for k, v in (raw.get("user_sets") or {}).items()
        }
        self.pins: dict[str, str] = dict(raw.get("pins") or {})
        self.removed: set[str] = set(raw.get("removed") or [])
        self.mirror: str | None = raw.get("mirror")
        self.synced: dict[str, Synced] = {
            k: Synced(**v) for k, v in (raw.get("synced") or {}).items()
        }

    def save(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        data = {
            "user_sets": {k: asdict(v) for k, v in self.user.items()},
            "pins": self.pins,
            "removed": sorted(self.removed),
            "mirror": self.mirror,
            "synced": {k: asdict(v) for k, v in self.synced.items()},
        }
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(self.file)

    # --- the sets ---------------------------------------------------------------------
    def all(self) -> dict[str, DocSet]:
        sets = {k: v for k, v in KNOWN.items() if k not in self.removed}
        sets.update(self.user)
        for name, ref in self.pins.items():
            if name in sets:
                sets[name] = DocSet(**{**asdict(sets[name]), "ref": ref})
        return sets

    def get(self, name: str) -> DocSet:
        sets = self.all()
        for key in sets:
            if key.lower() == name.lower():
                return sets[key]
        raise NotFoundError(
            f"no doc set {name!r}; known: {', '.join(sets) or 'none'} "
            f"('dirac-docs-mcp sources add NAME URL' adds one)"
        )

    def add(self, name: str, url: str, include: list[str] | None, ref: str | None) -> DocSet:
        if not _NAME.match(name):
            raise InvalidInputError(f"doc set name {name!r}: letters, digits, '_.-' only")
        if name in KNOWN and not url:
            self.removed.discard(name)
            return self.all()[name]
        if name in self.all():
            raise InvalidInputError(f"doc set {name!r} exists; 'sources remove {name}' first")
        if not url:
            raise InvalidInputError("give the doc set's git URL or folder")
        if "://" not in url and not url.startswith("git@"):
            path = Path(url).expanduser()
            if not path.exists():
                raise NotFoundError(f"{url} does not exist")
            url = str(path.resolve())
        self.user[name] = DocSet(name, url, list(include or DEFAULT_INCLUDE), user=True)
        self.removed.discard(name)
        if ref:
            self.pins[name] = ref
        return self.all()[name]

    def remove(self, name: str) -> DocSet:
        docset = self.get(name)
        self.user.pop(docset.name, None)
        self.pins.pop(docset.name, None)
        self.synced.pop(docset.name, None)
        if docset.name in KNOWN:
            self.removed.add(docset.name)
        return docset

    def url_of(self, docset: DocSet) -> str:
        """The set's URL, or its repository under the mirror (``<mirror>/<repo>`` or
        ``<mirror>/<repo>.git`` for a local mirror folder, ``<mirror>/<repo>.git`` else)."""
        if docset.user or not self.mirror:
            return docset.url
        mirror = self.mirror.rstrip("/")
        if "://" in mirror or mirror.startswith("git@"):
            return f"{mirror}/{docset.repo_name}.git"
        base = Path(mirror).expanduser()
        for candidate in (base / docset.repo_name, base / f"{docset.repo_name}.git"):
            if candidate.exists():
                return str(candidate)
        return str(base / docset.repo_name)

    def checkout_dir(self, name: str) -> Path:
        return self.base / name / "repo"

    def docs_dir(self, name: str) -> Path:
        return self.base / name / "docs"
