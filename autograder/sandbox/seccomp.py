"""A seccomp filter for the sandbox: `fallocate` fails with EOPNOTSUPP, io_uring is absent.

RLIMIT_FSIZE bounds what `write` and `ftruncate` can make a file hold, but not what
`fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 20 GiB)` reserves: real blocks beyond the file's size.
Refusing the call is harmless: glibc's posix_fallocate then writes the blocks itself, which
RLIMIT_FSIZE bounds. io_uring could issue the same operation without a system call the filter
sees, so its three calls return ENOSYS (programs then use plain system calls).

The program is a dozen classic-BPF instructions in the kernel's fixed ABI (struct sock_filter over
struct seccomp_data), generated here rather than through libseccomp: nothing to install, and the
whole policy is readable below. bwrap loads it with `--seccomp FD` (after setting no_new_privs).
"""

from __future__ import annotations

import contextlib
import errno
import os
import platform
import struct

# struct seccomp_data: int nr; u32 arch; ...
_NR, _ARCH = 0, 4
_LD_W_ABS, _JEQ_K, _RET_K = 0x20, 0x15, 0x06
_RET_ALLOW, _RET_KILL_PROCESS, _RET_ERRNO = 0x7FFF0000, 0x80000000, 0x00050000

# machine -> (AUDIT_ARCH_*, {syscall number: errno}); io_uring numbers are the same everywhere.
_IO_URING = {425: errno.ENOSYS, 426: errno.ENOSYS, 427: errno.ENOSYS}
_X32 = 0x40000000
ARCHES = {
    "x86_64": (0xC000003E, {285: errno.EOPNOTSUPP, _X32 | 285: errno.EOPNOTSUPP, **_IO_URING,
                            **{_X32 | n: e for n, e in _IO_URING.items()}}),
    "aarch64": (0xC00000B7, {47: errno.EOPNOTSUPP, **_IO_URING}),
}


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def filter_program(machine: str | None = None) -> bytes | None:
    """The BPF program for this machine, or None where its system call numbers are not known.
    A call made through another architecture's entry (int 0x80 on x86_64) kills the process,
    as libseccomp does by default: the numbers above would not apply to it."""
    arch = ARCHES.get(machine or platform.machine())
    if arch is None:
        return None
    audit_arch, refused = arch
    body = [_insn(_LD_W_ABS, 0, 0, _ARCH),
            _insn(_JEQ_K, 1, 0, audit_arch),
            _insn(_RET_K, 0, 0, _RET_KILL_PROCESS),
            _insn(_LD_W_ABS, 0, 0, _NR)]
    # one test per refused call: on a match fall through to its RET, else skip it
    for number, err in refused.items():
        body += [_insn(_JEQ_K, 0, 1, number), _insn(_RET_K, 0, 0, _RET_ERRNO | err)]
    body.append(_insn(_RET_K, 0, 0, _RET_ALLOW))
    return b"".join(body)


@contextlib.contextmanager
def fallocate_filter():
    """A readable descriptor holding the program for `bwrap --seccomp`, or None (unknown machine)."""
    program = filter_program()
    if program is None:
        yield None
        return
    fd = os.memfd_create("autograder-seccomp", os.MFD_CLOEXEC)
    try:
        os.write(fd, program)
        os.lseek(fd, 0, os.SEEK_SET)
        yield fd
    finally:
        os.close(fd)
