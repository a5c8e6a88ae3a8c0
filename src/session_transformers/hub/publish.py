"""Publishing a release folder to the Hub in one commit (see :mod:`session_transformers.hub`)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path


def local_hashes(folder: Path) -> dict[str, dict[str, str]]:
    """``path in repo`` -> ``{"sha256": ...}`` of every file under ``folder`` (a release's content tag and the
    dry run's check that it holds the built folder's bytes)."""
    folder = Path(folder)
    return {
        path.relative_to(folder).as_posix(): {"sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
        for path in sorted(p for p in folder.rglob("*") if p.is_file())
    }


KEEP_REMOTE = frozenset({".gitattributes"})
"""Remote files a release never deletes (``upload_folder`` keeps the same one)."""


@dataclass
class PublishResult:
    repo_id: str
    tag: str | None
    committed: bool
    """False when the Hub already held every file: ``create_commit`` then makes no commit."""
    commit_oid: str | None
    """The release's commit: the new one, or the revision that already held it."""
    files: list[str]
    deleted: list[str]
    """Files the repo had and the release has not (removed in the same commit)."""


def hf_token() -> str:
    """The Hub token from the environment (``HF_TOKEN``); never read from or written to any file here."""
    token = os.environ.get("HF_TOKEN")
    if not token:
        raise RuntimeError("set HF_TOKEN in the environment to publish (or use --dry-run DIR)")
    return token


def _head(api, repo_id: str, revision: str) -> str | None:
    from huggingface_hub.errors import RevisionNotFoundError

    try:
        return api.repo_info(repo_id, revision=revision, repo_type="model").sha
    except RevisionNotFoundError:  # a branch not created yet
        return None


def publish(
    release_dir: str | Path,
    repo_id: str,
    *,
    private: bool = True,
    tag: str | None = None,
    commit_message: str | None = None,
    revision: str = "main",
    token: str | None = None,
) -> PublishResult:
    """Publish a release folder to ``repo_id`` in one commit, and tag it.

    Creates the repo if needed (``private``; an existing repo keeps its visibility), then ONE ``create_commit``
    with every file of the folder (``CommitOperationAdd``) and a ``CommitOperationDelete`` for every file the repo
    has and the release has not (``.gitattributes`` is kept), what ``upload_folder(delete_patterns="*")`` does
    but always in a single commit (``upload_folder`` may split a large folder into several). The Hub client leaves
    out the files the Hub already holds and makes no commit when nothing is left, so publishing the same folder
    again makes none. A tag ``tag`` (``create_tag``, ``exist_ok``) marks the release.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
    from huggingface_hub.errors import EntryNotFoundError, RevisionNotFoundError

    release_dir = Path(release_dir)
    if not (release_dir / "README.md").exists() or not (release_dir / "config.json").exists():
        raise FileNotFoundError(f"{release_dir} is not a release folder (no README.md / config.json)")
    api = HfApi(token=token or hf_token())
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    files = sorted(p.relative_to(release_dir).as_posix() for p in release_dir.rglob("*") if p.is_file())
    try:
        remote = api.list_repo_files(repo_id, revision=revision, repo_type="model")
    except (EntryNotFoundError, RevisionNotFoundError):  # a repo without commits (or without that branch yet)
        remote = []
    stale = sorted(p for p in remote if p not in set(files) and p not in KEEP_REMOTE)
    head = _head(api, repo_id, revision)
    operations = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(release_dir / p)) for p in files]
    operations += [CommitOperationDelete(path_in_repo=p) for p in stale]
    info = api.create_commit(
        repo_id,
        operations=operations,
        commit_message=commit_message or f"Release {tag or ''}".strip(),
        revision=revision,
        repo_type="model",
    )
    committed = info.oid != head
    if tag:
        api.create_tag(repo_id, tag=tag, revision=info.oid, exist_ok=True, repo_type="model")
    return PublishResult(repo_id, tag, committed, info.oid, files, stale)
