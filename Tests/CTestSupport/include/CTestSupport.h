// What only the tests need from C: entering a network namespace. setns(2) is declared only under
// _GNU_SOURCE, which Glibc's Swift module does not define.
#ifndef CTESTSUPPORT_H
#define CTESTSUPPORT_H

#include <unistd.h>
#include <sys/syscall.h>
#include <linux/sched.h>

static inline int ctestsupport_setns(int fd, int nstype) { return (int)syscall(SYS_setns, fd, nstype); }
static const int CTESTSUPPORT_CLONE_NEWNET = CLONE_NEWNET;

#endif
