// Linux headers that Glibc's Swift module does not export, and constants it cannot see. No
// logic lives here.
#ifndef CLINUX_H
#define CLINUX_H

#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <sys/signalfd.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/inet_diag.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <dlfcn.h>
#include "CLinuxOpenSSL.h"

// linux/if.h clashes with glibc's net/if.h; the flags that net/if.h lacks are exported here.
static const unsigned int CLINUX_IFF_LOWER_UP = 0x10000;

// Legacy rtnetlink multicast groups, and the sock_diag request type.
static const unsigned int CLINUX_RTMGRP_IPV4_ROUTE = RTMGRP_IPV4_ROUTE;
static const unsigned int CLINUX_RTMGRP_IPV4_RULE = RTMGRP_IPV4_RULE;
static const unsigned int CLINUX_RTMGRP_IPV6_IFADDR = RTMGRP_IPV6_IFADDR;
static const unsigned int CLINUX_RTMGRP_IPV6_ROUTE = RTMGRP_IPV6_ROUTE;
static const unsigned short CLINUX_SOCK_DIAG_BY_FAMILY = SOCK_DIAG_BY_FAMILY;

// Enum-typed constants re-exported as plain integers.
static const int CLINUX_SOCK_NONBLOCK = SOCK_NONBLOCK;
static const int CLINUX_SOCK_CLOEXEC = SOCK_CLOEXEC;
static const int CLINUX_EPOLLIN = EPOLLIN;
static const int CLINUX_EPOLLOUT = EPOLLOUT;
static const int CLINUX_EPOLLERR = EPOLLERR;
static const int CLINUX_EPOLLHUP = EPOLLHUP;
static const int CLINUX_EPOLLRDHUP = EPOLLRDHUP;

// Signal sets: sigaddset may be a macro in some libcs.
static inline int clinux_sigaddset(sigset_t *set, int signo) { return sigaddset(set, signo); }
static inline int clinux_sigemptyset(sigset_t *set) { return sigemptyset(set); }

// accept4 and pipe2 are declared only under _GNU_SOURCE; pidfd_open has no glibc wrapper before 2.36
// (system call 434 on x86_64 and aarch64 alike).
extern int accept4(int fd, struct sockaddr *address, socklen_t *length, int flags);
extern int pipe2(int fds[2], int flags);
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
static inline int clinux_pidfd_open(pid_t pid, unsigned int flags) { return (int)syscall(SYS_pidfd_open, pid, flags); }

// The commit the binary was built from: scripts/build-release passes it as
// -Xcc -DPORTSYNC_COMMIT="..."; a plain `swift build` has none.
static inline const char *clinux_build_commit(void) {
#ifdef PORTSYNC_COMMIT
    return PORTSYNC_COMMIT;
#else
    return 0;
#endif
}

#endif
