// Linux headers that Glibc's Swift module does not export, and the function-like macros of
// netlink as static inline functions. No logic lives here.
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
#include <linux/sched.h>

// linux/if.h clashes with glibc's net/if.h; the flags that net/if.h lacks are exported here.
static const unsigned int CLINUX_IFF_LOWER_UP = 0x10000;
static const unsigned int CLINUX_IFF_DORMANT = 0x20000;
static const unsigned char CLINUX_IF_OPER_UNKNOWN = 0;
static const unsigned char CLINUX_IF_OPER_DOWN = 2;
static const unsigned char CLINUX_IF_OPER_UP = 6;

// Legacy rtnetlink multicast groups, and the sock_diag request type.
static const unsigned int CLINUX_RTMGRP_IPV4_ROUTE = RTMGRP_IPV4_ROUTE;
static const unsigned int CLINUX_RTMGRP_IPV4_RULE = RTMGRP_IPV4_RULE;
static const unsigned short CLINUX_SOCK_DIAG_BY_FAMILY = SOCK_DIAG_BY_FAMILY;

// Enum-typed constants re-exported as plain integers.
static const int CLINUX_SOCK_NONBLOCK = SOCK_NONBLOCK;
static const int CLINUX_SOCK_CLOEXEC = SOCK_CLOEXEC;
static const int CLINUX_EPOLLIN = EPOLLIN;
static const int CLINUX_EPOLLOUT = EPOLLOUT;
static const int CLINUX_EPOLLERR = EPOLLERR;
static const int CLINUX_EPOLLHUP = EPOLLHUP;
static const int CLINUX_EPOLLRDHUP = EPOLLRDHUP;

// netlink(3) macros.
static inline unsigned int clinux_nlmsg_align(unsigned int len) { return NLMSG_ALIGN(len); }
static inline unsigned int clinux_nlmsg_length(unsigned int len) { return NLMSG_LENGTH(len); }
static inline unsigned int clinux_nlmsg_hdrlen(void) { return NLMSG_HDRLEN; }
static inline void *clinux_nlmsg_data(struct nlmsghdr *nlh) { return NLMSG_DATA(nlh); }
static inline int clinux_nlmsg_ok(const struct nlmsghdr *nlh, int len) { return NLMSG_OK(nlh, len); }
static inline struct nlmsghdr *clinux_nlmsg_next(struct nlmsghdr *nlh, int *len) { return NLMSG_NEXT(nlh, *len); }
static inline int clinux_nlmsg_payload(const struct nlmsghdr *nlh, int len) { return NLMSG_PAYLOAD(nlh, len); }

// rtnetlink(3) macros.
static inline unsigned int clinux_rta_align(unsigned int len) { return RTA_ALIGN(len); }
static inline unsigned int clinux_rta_length(unsigned int len) { return RTA_LENGTH(len); }
static inline int clinux_rta_ok(const struct rtattr *rta, int len) { return RTA_OK(rta, len); }
static inline struct rtattr *clinux_rta_next(struct rtattr *rta, int *len) { return RTA_NEXT(rta, *len); }
static inline void *clinux_rta_data(struct rtattr *rta) { return RTA_DATA(rta); }
static inline int clinux_rta_payload(const struct rtattr *rta) { return RTA_PAYLOAD(rta); }
static inline struct rtattr *clinux_ifla_rta(struct ifinfomsg *ifi) { return IFLA_RTA(ifi); }
static inline struct rtattr *clinux_ifa_rta(struct ifaddrmsg *ifa) { return IFA_RTA(ifa); }

// Signal sets: sigaddset may be a macro in some libcs.
static inline int clinux_sigaddset(sigset_t *set, int signo) { return sigaddset(set, signo); }
static inline int clinux_sigemptyset(sigset_t *set) { return sigemptyset(set); }

// setns(2) is declared only under _GNU_SOURCE, which Glibc's module does not define.
static inline int clinux_setns(int fd, int nstype) { return (int)syscall(SYS_setns, fd, nstype); }
static const int CLINUX_CLONE_NEWNET = CLONE_NEWNET;

#endif
