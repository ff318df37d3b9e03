#include <uv.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

// Declared here: glibc declares it only under _GNU_SOURCE.
extern int pthread_setname_np(pthread_t thread, const char *name);

/// Names the calling thread for the kernel (top -H, perf, /proc), at most 15 bytes.
static inline void kairos_name_this_thread(const char *name) { pthread_setname_np(pthread_self(), name); }

/// A non-blocking eventfd for waking a loop from other threads; -1 with errno on failure.
static inline int kairos_wake_create(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }
/// Adds one to the eventfd's counter, which makes it readable.
static inline void kairos_wake_signal(int fd) {
    uint64_t one = 1;
    ssize_t written = write(fd, &one, sizeof one);
    (void)written;  // EAGAIN only at a counter near 2^64: the fd is readable then anyway.
}
/// Resets the counter (the fd is no longer readable until the next signal).
static inline void kairos_wake_clear(int fd) {
    uint64_t count;
    ssize_t got = read(fd, &count, sizeof count);
    (void)got;  // EAGAIN: nothing was signalled since the last clear.
}
