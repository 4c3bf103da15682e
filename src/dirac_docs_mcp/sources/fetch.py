"""Fetch one revision of a repository with ``git`` (shallow, sparse), or take a plain
folder as it is. Only the ``git`` program is run; no repository code is ever executed."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import SourceError

GIT_TIMEOUT_S = 900


@dataclass
class Fetched:
    checkout: Path  # the folder the files are taken from
    commit: str  # full commit id, "" for a plain folder
    version: str  # "<tag or branch>@<commit[:12]>", or "local" for a plain folder


def is_remote(url: str) -> bool:
    return "://" in url and not url.startswith("file://") or url.startswith("git@")


def _git(*args: str, cwd: Path | None = None) -> str:
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="echo", LC_ALL="C")
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
        )
    except FileNotFoundError:
        raise SourceError("git is not installed; 'sources sync' needs the git program") from None
    except subprocess.TimeoutExpired:
        raise SourceError(f"git {args[0]} took more than {GIT_TIMEOUT_S} s; try again") from None
    if done.returncode != 0:
        lines = [ln for ln in (done.stderr or done.stdout).strip().splitlines() if ln.strip()]
        raise SourceError(f"git {args[0]} failed: {lines[-1] if lines else done.returncode}")
    return done.stdout


def _default_branch(url: str, cwd: Path) -> str:
    try:
        out = _git("ls-remote", "--symref", url, "HEAD", cwd=cwd)
    except SourceError:
        return "HEAD"
    for line in out.splitlines():
        if line.startswith("ref:") and "refs/heads/" in line:
            return line.split("refs/heads/", 1)[1].split()[0]
    return "HEAD"


def fetch(url: str, ref: str | None, checkout: Path, sparse: list[str]) -> Fetched:
    """Bring ``checkout`` to ``ref`` (a tag, branch or commit; None: the default branch)
    of ``url`` with a depth-1 fetch of only the files ``sparse`` (repository-relative
    patterns) names. A local folder that is not a git repository is taken as it is."""
    local = Path(url).expanduser()
    if not is_remote(url) and local.is_dir() and not _is_git(local):
        return Fetched(local.resolve(), "", "local")
    if not is_remote(url) and not url.startswith("file://") and not local.exists():
        raise SourceError(f"{url} does not exist (a git URL, a repository or a folder)")
    source = str(local.resolve()) if not is_remote(url) and local.exists() else url
    checkout.mkdir(parents=True, exist_ok=True)
    if not (checkout / ".git").is_dir():
        _git("init", "-q", str(checkout))
    _git("config", "core.sparseCheckout", "true", cwd=checkout)
    info = checkout / ".git" / "info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "sparse-checkout").write_text("".join(f"/{p.strip('/')}\n" for p in sparse))
    args = ["fetch", "-q", "--depth", "1", "--no-tags"]
    if is_remote(url):
        # blobless: only the blobs the sparse checkout needs are downloaded
        _git("config", "remote.origin.url", source, cwd=checkout)
        _git("config", "remote.origin.promisor", "true", cwd=checkout)
        _git("config", "remote.origin.partialclonefilter", "blob:none", cwd=checkout)
        _git("config", "extensions.partialClone", "origin", cwd=checkout)
        args += ["--filter=blob:none", "origin"]
    else:
        args.append(source)
    label = ref or _default_branch(source, checkout)
    _git(*args, ref or "HEAD", cwd=checkout)
    _git("checkout", "-q", "--force", "--detach", "FETCH_HEAD", cwd=checkout)
    commit = _git("rev-parse", "HEAD", cwd=checkout).strip()
    return Fetched(checkout, commit, f"{label}@{commit[:12]}")


def _is_git(path: Path) -> bool:
    return (path / ".git").exists() or ((path / "HEAD").is_file() and (path / "objects").is_dir())
