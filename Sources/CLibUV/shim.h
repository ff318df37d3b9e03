#include <uv.h>
#include <pthread.h>

// Declared here: glibc declares it only under _GNU_SOURCE.
extern int pthread_setname_np(pthread_t thread, const char *name);

/// Names the calling thread for the kernel (top -H, perf, /proc), at most 15 bytes.
static inline void kairos_name_this_thread(const char *name) { pthread_setname_np(pthread_self(), name); }
