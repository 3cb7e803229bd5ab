// What only the tests need from C: entering a network namespace, and another process's fd limit.
// setns(2) and prlimit(2) are declared only under _GNU_SOURCE, which Glibc's Swift module does
// not define.
#ifndef CTESTSUPPORT_H
#define CTESTSUPPORT_H

#include <unistd.h>
#include <sys/syscall.h>
#include <linux/sched.h>
#include <sys/resource.h>

static inline int ctestsupport_setns(int fd, int nstype) { return (int)syscall(SYS_setns, fd, nstype); }
static const int CTESTSUPPORT_CLONE_NEWNET = CLONE_NEWNET;

// Sets the soft RLIMIT_NOFILE of `pid`, keeping its hard limit; returns the soft limit it had,
// or -1 with errno set.
static inline long long ctestsupport_set_open_file_limit(int pid, unsigned long long soft) {
    struct rlimit old, limited;
    if (syscall(SYS_prlimit64, pid, RLIMIT_NOFILE, NULL, &old) != 0) return -1;
    limited.rlim_cur = soft;
    limited.rlim_max = old.rlim_max;
    if (syscall(SYS_prlimit64, pid, RLIMIT_NOFILE, &limited, NULL) != 0) return -1;
    return (long long)old.rlim_cur;
}

#endif
