"""Walking a folder that untrusted code wrote: descriptor-relative, never following a link,
with a bounded number of open descriptors, and never raising for what it finds.

Path strings are only built for reports: every call is relative to an open folder descriptor
(`dir_fd`, `O_NOFOLLOW`), so neither a link nor a path longer than PATH_MAX can redirect or stop
the walk. What the walk cannot handle (an entry it cannot stat, open, chown or chmod; folders
nested deeper than `max_depth`) is deleted, never skipped, and reported.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path

MAX_DEPTH = 32          # folders nested deeper are removed: honest notebooks stay far above
MAX_PATH = 1024         # so are entries whose path below the root is longer: path-based tools
                        # (tar, grep -R, backups) must be able to read what is kept
_REMOVE_DEPTH = 16      # descriptors held at once while deleting a subtree
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


def _chmod_fd(pfd: int, mode: int) -> None:
    # An O_PATH descriptor pins the inode; chmod through /proc changes exactly that inode.
    os.chmod(f"/proc/self/fd/{pfd}", mode)


def _open_dir(name: str, dir_fd: int) -> int:
    """The folder `name` in dir_fd, opened for listing; made searchable first when we own it
    (the notebook may have left it mode 000, which stops its owner but not root)."""
    pfd = os.open(name, _PATH_FLAGS, dir_fd=dir_fd)
    try:
        st = os.fstat(pfd)
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(errno.ENOTDIR, "not a folder", name)
        if st.st_mode & 0o700 != 0o700 and st.st_uid == os.geteuid():
            _chmod_fd(pfd, stat.S_IMODE(st.st_mode) | 0o700)
        return os.open(".", _DIR_FLAGS, dir_fd=pfd)
    finally:
        os.close(pfd)


def _names(fd: int) -> list[str]:
    with os.scandir(fd) as entries:
        return [entry.name for entry in entries]


def _subfolder(fd: int) -> str | None:
    """One subfolder of fd (links are not folders here); every other entry is unlinked."""
    with os.scandir(fd) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                return entry.name
            try:
                os.unlink(entry.name, dir_fd=fd)
            except FileNotFoundError:
                pass
    return None


def remove_at(dir_fd: int, name: str) -> bool:
    """Delete the entry `name` of dir_fd, a whole subtree if it is a folder, however deep:
    at most _REMOVE_DEPTH descriptors are open, deeper folders are first moved up into the
    top of the subtree (a rename within one file system). True when it is gone."""
    try:
        if not stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
            os.unlink(name, dir_fd=dir_fd)
            return True
        stack = [(_open_dir(name, dir_fd), name)]
    except FileNotFoundError:
        return True
    except OSError:
        return False
    try:
        for _ in range(10_000_000):   # each round removes or moves one entry: bounded by the tree
            if not stack:
                return True
            fd, own = stack[-1]
            sub = _subfolder(fd)
            if sub is None:
                os.close(fd)
                stack.pop()
                os.rmdir(own, dir_fd=stack[-1][0] if stack else dir_fd)
            elif len(stack) >= _REMOVE_DEPTH:
                os.rename(sub, f".removed-{secrets.token_hex(8)}", src_dir_fd=fd, dst_dir_fd=stack[0][0])
            else:
                stack.append((_open_dir(sub, fd), sub))
        return False
    except OSError:
        return False
    finally:
        for fd, _ in stack:
            os.close(fd)


def remove_tree(path: Path) -> bool:
    """Delete path (a folder or not), however deep, without following links (see remove_at)."""
    path = Path(path)
    try:
        parent = os.open(path.parent, _DIR_FLAGS)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    try:
        return remove_at(parent, path.name)
    finally:
        os.close(parent)


def sweep(root: Path, *, owner: tuple[int, int] | None = None, seal: bool = False,
          max_depth: int = MAX_DEPTH, max_path: int = MAX_PATH) -> list[str]:
    """Walk root without following links and return the relative paths it deleted.

    owner: chown every entry (links themselves, never their targets) to (uid, gid).
    seal: also delete every link, FIFO, socket and device (a reader outside the sandbox would
    follow or block on them), and give the owner read/write on files and rwx on folders.
    Folders deeper than max_depth, entries whose relative path is longer than max_path
    characters, and any entry that cannot be handled, are deleted.
    """
    try:
        root_fd = os.open(root, _DIR_FLAGS)
    except OSError:
        return []
    removed: list[str] = []
    try:
        if owner:
            os.fchown(root_fd, *owner)
        if seal:
            os.fchmod(root_fd, 0o755)
        stack = [(root_fd, "", _names(root_fd))]
    except OSError:
        os.close(root_fd)
        return []
    while stack:
        fd, rel, names = stack[-1]
        if not names:
            if fd != root_fd:
                os.close(fd)
            stack.pop()
            continue
        name = names.pop()
        path = f"{rel}/{name}" if rel else name
        try:
            child = _visit(fd, name, owner, seal, deep=len(stack) > max_depth or len(path) > max_path)
        except OSError:   # cannot be handled: delete it
            child = None
            if remove_at(fd, name):
                removed.append(path)
            continue
        if child is None:
            removed.append(path)
            continue
        if child >= 0:
            try:
                stack.append((child, path, _names(child)))
            except OSError:
                os.close(child)
                if remove_at(fd, name):
                    removed.append(path)
    os.close(root_fd)
    return sorted(removed)


class _TooDeep(OSError):
    pass


def _visit(fd: int, name: str, owner, seal: bool, deep: bool) -> int | None:
    """Handle one entry: a descriptor to descend into (a folder), -1 (done), None (deleted)."""
    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
    if owner:
        os.chown(name, *owner, dir_fd=fd, follow_symlinks=False)
    mode = st.st_mode
    if deep:
        raise _TooDeep(errno.ELOOP, "nested too deeply", name)
    if stat.S_ISDIR(mode):
        if seal:
            _fix_mode(fd, name, stat.S_IFDIR, 0o700)
        return _open_dir(name, fd)
    if stat.S_ISREG(mode):
        if seal:
            _fix_mode(fd, name, stat.S_IFREG, 0o600)
        return -1
    if seal:
        os.unlink(name, dir_fd=fd)
        return None
    return -1


def _fix_mode(fd: int, name: str, kind: int, bits: int) -> None:
    pfd = os.open(name, _PATH_FLAGS, dir_fd=fd)
    try:
        st = os.fstat(pfd)
        if stat.S_IFMT(st.st_mode) != kind:
            raise OSError(errno.EINVAL, "changed while sealing", name)
        if st.st_mode & bits != bits:
            _chmod_fd(pfd, stat.S_IMODE(st.st_mode) | bits)
    finally:
        os.close(pfd)


def allocated_bytes(root: Path, max_entries: int = 20_000, max_depth: int = 64) -> tuple[int, bool]:
    """(bytes of disk allocated under root, whether the walk saw everything), without following
    links. st_blocks counts what is really allocated: sparse files count what they hold,
    fallocate'd space counts in full. The walk stops after max_entries entries or below
    max_depth folders; then it is incomplete, which a caller should treat as over any limit."""
    try:
        root_fd = os.open(root, _DIR_FLAGS)
        stack = [(root_fd, _names(root_fd))]
    except OSError:
        return 0, True
    total, seen, complete = 0, 0, True
    try:
        while stack:
            fd, names = stack[-1]
            if not names:
                os.close(fd)
                stack.pop()
                continue
            name = names.pop()
            seen += 1
            if seen > max_entries:
                return total, False
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                total += st.st_blocks * 512
                if stat.S_ISDIR(st.st_mode):
                    if len(stack) >= max_depth:
                        complete = False
                        continue
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                    try:
                        stack.append((child, _names(child)))
                    except OSError:
                        os.close(child)
            except FileNotFoundError:   # gone meanwhile
                pass
            except OSError:             # unreadable: what it holds is unknown
                complete = False
        return total, complete
    finally:
        for fd, _ in stack:
            os.close(fd)
