"""A results folder written whole or not at all: staged in a temporary folder beside it, then renamed into place.

:func:`staged_folder` yields a fresh hidden folder ``.<name>.<random>.tmp`` next to the target; when the block
ends without an error the folder is renamed onto the target (one ``rename``, atomic on one file system), and on
an error it is deleted. So a run killed half-way leaves no half-written target, and two runs writing one target
at once each publish a complete set of files: the target ends up as one run's folder, never a mixture.

An existing target that holds anything is refused (:class:`OutputExistsError`) unless ``overwrite`` is true;
then it is replaced whole — renamed aside, the new folder renamed in, the old one deleted — so no old file
survives next to the new ones. An empty existing folder is simply replaced. Even with ``overwrite``, a folder
that is not a previous run's results (no ``summary.json`` in it), the working folder or one above it is never
replaced (:class:`UnsafeOverwriteError`): ``--out . --overwrite`` must not delete a project. A target that
exists but is not a folder (a file, a symbolic link) is refused too.

:func:`staged_file` does the same for one file (a sweep's results table): written under a temporary name
beside it, then linked (no overwrite: fails if the file appeared meanwhile) or renamed (overwrite) into place.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Attempts to publish under --overwrite when other writers keep putting their folder in place first.
_PUBLISH_ATTEMPTS = 100
# What rename() reports when the target is a folder that is not empty (POSIX allows either; Windows: EACCES).
_TARGET_TAKEN = frozenset({errno.ENOTEMPTY, errno.EEXIST, errno.EACCES, errno.EPERM})


class OutputFolderError(OSError):
    """A results folder that must not be written; ``str()`` is one readable line naming it."""

    def __init__(self, code: int, target: Path, message: str) -> None:
        super().__init__(code, message, str(target))
        self.target = target
        self.message = message

    def __str__(self) -> str:
        return self.message


class OutputExistsError(OutputFolderError, FileExistsError):
    """The results folder exists (and is not empty) and overwriting was not asked for."""

    def __init__(self, target: Path) -> None:
        super().__init__(errno.EEXIST, target, f"{target} already exists")


class UnsafeOverwriteError(OutputFolderError, FileExistsError):
    """The results folder exists and is not replaced even with overwrite: it is not a run's results."""

    def __init__(self, target: Path, why: str) -> None:
        super().__init__(errno.EEXIST, target, f"{target} {why}: not replacing it")


class NotAFolderError(OutputFolderError, NotADirectoryError):
    """The results path exists and is a file or a symbolic link."""

    def __init__(self, target: Path, kind: str) -> None:
        super().__init__(errno.ENOTDIR, target, f"{target} exists and is {kind}, not a folder")


def _is_empty_dir(path: Path) -> bool:
    with os.scandir(path) as entries:
        return next(entries, None) is None


def check_target(target: str | Path, overwrite: bool) -> None:
    """Raise before any work if ``target`` cannot be written: :class:`OutputExistsError` for a folder with files
    in it (unless ``overwrite``), :class:`UnsafeOverwriteError` for one that is not a run's results, the working
    folder or above it, :class:`NotAFolderError` for a file or link, ``ValueError`` for a NUL in the path."""
    path = Path(target)
    if "\0" in str(path):
        raise ValueError("a folder name cannot contain a NUL character")
    if not os.path.lexists(path):
        return
    if path.is_symlink() or not path.is_dir():
        raise NotAFolderError(path, "a symbolic link" if path.is_symlink() else "a file")
    if _is_empty_dir(path):
        return
    if not overwrite:
        raise OutputExistsError(path)
    here = Path.cwd().resolve()
    if path.resolve() == here or path.resolve() in here.parents:
        raise UnsafeOverwriteError(path, "is the working folder or holds it")
    if not (path / "summary.json").is_file():
        raise UnsafeOverwriteError(path, "holds files but no summary.json (it is not a dcsim run's results)")


def _hidden_sibling(target: Path, suffix: str) -> Path:
    """A new empty folder ``.<target name>.<random><suffix>`` beside ``target`` (the name cut to 100 bytes),
    made with the usual permissions (the umask's, unlike ``tempfile.mkdtemp``'s owner-only ones), since it
    becomes the results folder."""
    stem = target.name.encode("utf-8", errors="surrogateescape")[:100].decode("utf-8", errors="ignore")
    while True:
        candidate = target.parent / f".{stem}.{secrets.token_hex(6)}{suffix}"
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue


def publish(staged: Path, target: Path, overwrite: bool) -> None:
    """Rename the complete folder ``staged`` onto ``target`` (see the module docstring for the rules).

    ``rename`` replaces an empty folder and fails on a folder with files, which is what makes the no-overwrite
    case race-free. Under ``overwrite`` the old folder is first renamed aside (to a fresh hidden name) and
    deleted once the new one is in place; if another writer slips its folder in between, that one is moved
    aside in turn, so the last writer's folder stays, whole.
    """
    check_target(target, overwrite)
    aside: list[Path] = []
    try:
        for _ in range(_PUBLISH_ATTEMPTS):
            try:
                os.rename(staged, target)
                return
            except OSError as error:
                if error.errno not in _TARGET_TAKEN or not target.is_dir():
                    raise
                if not overwrite:
                    raise OutputExistsError(target) from None
            old = _hidden_sibling(target, ".old")
            try:
                os.replace(target, old)  # replaces the empty placeholder made by mkdtemp
            except FileNotFoundError:  # another writer moved it aside first: try again
                old.rmdir()
                continue
            aside.append(old)
        raise OSError(errno.EBUSY, f"{target} keeps being replaced by other writers", str(target))
    finally:
        for old in aside:
            shutil.rmtree(old, ignore_errors=True)


@contextmanager
def staged_folder(target: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a new empty folder beside ``target`` to write into; publish it onto ``target`` at the end.

    Raises :class:`OutputExistsError` (before yielding, and again at the end if another writer created the
    target meanwhile) unless ``overwrite``; ``OSError`` if the folder cannot be made or renamed. The staged
    folder is deleted whenever it is not published.
    """
    check_target(target, overwrite)
    path = Path(os.path.abspath(target))  # "results/x/.." and "." named by their real folder
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = _hidden_sibling(path, ".tmp")
    try:
        yield staged
        publish(staged, path, overwrite)
    finally:
        if staged.exists():
            shutil.rmtree(staged, ignore_errors=True)


@contextmanager
def staged_file(target: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside the file ``target`` to write; move it onto ``target`` at the end.

    Without ``overwrite`` an existing ``target`` raises :class:`OutputExistsError` (before yielding, and at the
    end if it appeared meanwhile: the move is a hard link, which never replaces a file); with it, ``target``
    is replaced in one rename. The temporary file is deleted whenever it is not published.
    """
    path = Path(target)
    if "\0" in str(path):
        raise ValueError("a file name cannot contain a NUL character")
    if not overwrite and os.path.lexists(path):
        raise OutputExistsError(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stem = path.name.encode("utf-8", errors="surrogateescape")[:100].decode("utf-8", errors="ignore")
    staged = path.parent / f".{stem}.{secrets.token_hex(6)}.tmp{path.suffix}"
    try:
        yield staged
        if overwrite:
            os.replace(staged, path)
            return
        try:
            os.link(staged, path)
        except FileExistsError:
            raise OutputExistsError(path) from None
        except OSError:  # a file system without hard links: the check above is all there is
            if os.path.lexists(path):
                raise OutputExistsError(path) from None
            os.replace(staged, path)
    finally:
        staged.unlink(missing_ok=True)
