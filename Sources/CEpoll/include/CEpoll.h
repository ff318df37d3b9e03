#ifndef KAIROS_CEPOLL_H
#define KAIROS_CEPOLL_H

#include <stdint.h>

// Thin wrappers over Linux epoll and timerfd (whose headers Swift's Glibc module does not
// expose), for the load harness's client loop. Each returns -1 and leaves errno on failure.

int kairos_epoll_create(void);
/// Registers (or with modify != 0, changes) `fd` for `events` (EPOLLIN = 1, EPOLLOUT = 4), tagged with `tag`.
int kairos_epoll_set(int epoll, int fd, uint32_t events, uint64_t tag, int modify);
int kairos_epoll_remove(int epoll, int fd);
/// Waits up to `timeout_ms` (-1: forever) and fills `tags` and `events` with up to `capacity` ready entries.
int kairos_epoll_wait(int epoll, uint64_t *tags, uint32_t *events, int capacity, int timeout_ms);

/// A non-blocking CLOCK_MONOTONIC timer descriptor.
int kairos_timerfd_create(void);
/// Arms the timer to fire once at `deadline_ns` on CLOCK_MONOTONIC (0 disarms).
int kairos_timerfd_arm(int fd, uint64_t deadline_ns);
/// CLOCK_MONOTONIC now, in nanoseconds.
uint64_t kairos_monotonic_ns(void);

#endif
