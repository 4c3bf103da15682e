"""Fetch one doc set and lay out the folder that is indexed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .commands import build_commands
from .fetch import fetch
from .registry import DocSet, Registry, Synced
from .select import mirror_tree, taken_files


@dataclass
class SyncResult:
    name: str
    version: str
    docs_dir: Path
    files: int
    counts: dict[str, int]

    def line(self) -> str:
        c = self.counts
        return (
            f"{self.name}: {self.version}, {self.files} files "
            f"(+{c['added']} ~{c['changed']} -{c['removed']})"
        )


def sync_set(registry: Registry, docset: DocSet) -> SyncResult:
    """Fetch ``docset`` at its pinned ref (or default branch) and mirror the files it takes
    into its docs folder; records the version in ``registry`` (not saved)."""
    url = registry.url_of(docset)
    fetched = fetch(url, docset.ref, registry.checkout_dir(docset.name), docset.sparse())
    files = taken_files(fetched.checkout, docset.include, docset.exclude)
    generated = build_commands(fetched.checkout) if docset.commands else {}
    docs = registry.docs_dir(docset.name)
    counts = mirror_tree(docs, fetched.checkout, files, generated)
    registry.synced[docset.name] = Synced(fetched.version, fetched.commit, url)
    return SyncResult(docset.name, fetched.version, docs, len(files) + len(generated), counts)
