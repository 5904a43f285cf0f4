/*
 * statx() without AT_NO_AUTOMOUNT, preloaded into every process of Corral's Debian images
 * (/etc/ld.so.preload).
 *
 * Why: the gVisor (runsc) build on these hosts rejects statx calls that carry AT_NO_AUTOMOUNT
 * with EINVAL, and glibc falls back to fstatat only on ENOSYS, so in a sandbox `ls -l`, `stat`,
 * `cp -a` and the rest of coreutils' statx users fail with "Invalid argument". The flag only
 * stops the kernel from triggering an automount, and sandboxes have no automounts, so clearing
 * it changes nothing else. Harmless on a kernel that accepts the flag (the build container and
 * the host's chroot run it too).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

int statx(int dirfd, const char *restrict path, int flags, unsigned int mask,
          struct statx *restrict buf) {
    return (int)syscall(SYS_statx, dirfd, path, flags & ~AT_NO_AUTOMOUNT, mask, buf);
}
