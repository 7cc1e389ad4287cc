"""A job's remote repository (`remote: NAME`): how its commits travel between machines.

At submit the remote's URL is recorded and the base commit pushed to
`refs/agentfleet/bases/SHA`, so a machine that has never seen the submitter's checkout can
fetch it. A worker then never uses the submitter's checkout: it works in a bare clone of its
own, one per remote URL, under its clones folder (`AGENTFLEET_CLONES`, by default
`~/.cache/agentfleet/clones`), with the remote configured there under the same name. It
fetches the commits it needs and pushes what it made; a branch it moves on the remote moves
by the remote's own compare-and-swap, `git push --force-with-lease=REF:OLD`.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from agentfleet import validate
from agentfleet.errors import InvalidArgument
from agentfleet.workspaces.git import Git, GitError

CLONES_ENV = "AGENTFLEET_CLONES"
BASES = "refs/agentfleet/bases/"
# A fetch or push that hangs (a stalled network) fails after this instead: the job's branch
# is pushed from the worker's loop, which must get back to heartbeating its other jobs.
NETWORK_TIMEOUT = 120.0


def base_ref(commit: str) -> str:
    """Where a job's base commit waits on the remote for machines that lack it."""
    return f"{BASES}{commit}"


def clones_root(explicit: str | Path | None = None) -> Path:
    """The folder a worker keeps its clones in: `explicit`, else `AGENTFLEET_CLONES`, else
    `agentfleet/clones` in the user's cache folder."""
    chosen = explicit or os.environ.get(CLONES_ENV)
    if chosen:
        return Path(chosen).expanduser().absolute()
    cache = os.environ.get("XDG_CACHE_HOME", "")
    folder = Path(cache) if os.path.isabs(cache) else Path.home() / ".cache"
    return folder / "agentfleet" / "clones"


def slug(url: str) -> str:
    """A folder name for one remote URL: readable, and unique by the URL's hash."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", url).strip("-.")[-48:].lstrip("-.")
    return f"{readable or 'remote'}-{hashlib.sha256(url.encode()).hexdigest()[:12]}"


def check_name(value: object, what: str) -> str:
    """A remote's name as a job or plan gives it (git reads one starting '-' as an option)."""
    name = validate.name(value, what)
    if name.startswith("-") or any(ch.isspace() for ch in name):
        raise InvalidArgument(f"{what} {name!r} is not a remote's name")
    return name


def _is_local_path(url: str) -> bool:
    if "://" in url:
        return False
    first = url.split("/", 1)[0]
    return ":" not in first  # `host:path` is ssh's short form


def url_of(repo: str | Path, name: str) -> str:
    """At submit: the URL of the repository's remote `name`, a local path made absolute
    (so it means the same from any folder); InvalidArgument naming it when there is none."""
    git = Git(repo)
    try:
        url = git.run("remote", "get-url", name).strip()
    except GitError:
        known = git.run("remote", check=False).split()
        raise InvalidArgument(
            f"remote {name!r} is not a remote of {repo} (its remotes: "
            f"{', '.join(known) or 'none'}; add it with git remote add {name} URL)"
        ) from None
    if _is_local_path(url) and not os.path.isabs(url):
        url = str((Path(repo) / url).resolve())
    return url


def located(repo: str | Path, name: str, commit: str) -> dict[str, str]:
    """At submit: the payload fields of a job with a remote (its name and URL), once the
    base commit is on the remote (pushing it again is a no-op)."""
    url = url_of(repo, name)
    try:
        Git(repo).run(
            "push", "--quiet", "--no-verify", name, f"{commit}:{base_ref(commit)}",
            timeout=NETWORK_TIMEOUT,
        )  # fmt: skip
    except GitError as exc:
        raise InvalidArgument(
            f"cannot push the base commit {commit[:12]} to remote {name!r} ({url}): {exc}"
        ) from None
    return {"remote": name, "remote_url": url}


@dataclass(frozen=True)
class Remote:
    name: str
    url: str


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One process at a time per clone while it is made or configured."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Clone:
    """A worker's bare clone of one remote: its worktrees are made here, its commits
    fetched from and pushed to the remote."""

    def __init__(self, root: Path, remote: Remote) -> None:
        self.remote = remote
        self.path = root / slug(remote.url)
        self.git = Git(self.path)

    @classmethod
    def open(cls, remote: Remote, root: Path) -> Clone:
        """The clone, made (an empty bare repository) the first time."""
        clone = cls(root, remote)
        clone.configure(remote)
        return clone

    def configure(self, remote: Remote) -> None:
        """Make the clone if it is not there yet, and point `remote.name` at its URL (only
        its URL: the clone keeps no remote-tracking branches, it fetches what it needs)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(self.path.with_name(self.path.name + ".lock")):
            if not (self.path / "HEAD").is_file():
                self.path.mkdir(exist_ok=True)
                self.git.run("init", "--quiet", "--bare")
            key = f"remote.{remote.name}.url"
            if self.git.run("config", "--get", key, check=False).strip() != remote.url:
                self.git.run("config", key, remote.url)

    # -- fetching -----------------------------------------------------------------------

    def has(self, commit: str) -> bool:
        return self.git.ok("cat-file", "-e", f"{commit}^{{commit}}")

    def bring(self, commit: str, *hints: str) -> None:
        """Make `commit` present here: fetched by its name, or else with one of the refs
        `hints` that holds it. GitError when the remote has it under neither."""
        said = ""
        for what in (commit, *hints):
            if self.has(commit):
                return
            try:
                self.git.run(
                    "fetch", "--quiet", "--no-tags", "--no-write-fetch-head",
                    self.remote.name, what, timeout=NETWORK_TIMEOUT,
                )  # fmt: skip
            except GitError as exc:
                said = str(exc)
        if not self.has(commit):
            raise GitError(
                ["fetch", self.remote.name, commit],
                self.path,
                f"commit {commit} is not on remote {self.remote.name} ({self.remote.url})"
                + (f"; {said}" if said else ""),
                1,
            )

    def read(self, ref: str) -> str | None:
        """The commit `ref` names on the remote now, or None when it has no such ref."""
        listed = self.git.run("ls-remote", self.remote.name, ref, timeout=NETWORK_TIMEOUT)
        for line in listed.splitlines():
            commit, _, name = line.partition("\t")
            if name == ref:
                return commit
        return None

    def fetch(self, ref: str) -> str | None:
        """The commit `ref` names on the remote, brought here; None when there is no ref."""
        commit = self.read(ref)
        if commit is not None:
            self.bring(commit, ref)
        return commit

    # -- pushing ------------------------------------------------------------------------

    def push(self, commit: str, ref: str) -> None:
        """Create `ref` on the remote at `commit` (or fast-forward it there)."""
        self.git.run(
            "push", "--quiet", "--no-verify", self.remote.name, f"{commit}:{ref}",
            timeout=NETWORK_TIMEOUT,
        )  # fmt: skip

    def swap(self, ref: str, new: str, old: str | None) -> bool:
        """Move `ref` on the remote to `new` only if it is at `old` (None: only if it does
        not exist): the remote checks, as `git update-ref` does locally. Returns whether it
        moved; GitError when the push failed for another reason."""
        lease = f"--force-with-lease={ref}:{old or ''}"
        try:
            self.git.run(
                "push", "--quiet", "--no-verify", lease, self.remote.name, f"{new}:{ref}",
                timeout=NETWORK_TIMEOUT,
            )  # fmt: skip
        except GitError:
            if self.read(ref) != old:
                return False  # someone moved it meanwhile
            raise
        return True
