#ifndef KAIROS_CSCHEDULING_H
#define KAIROS_CSCHEDULING_H

// Real-time scheduling for the few threads whose waits for a CPU are latency: the gateway's
// event loop and the load client's threads. Swift's Glibc module does not expose
// SCHED_RESET_ON_FORK, which keeps threads these threads start out of the real-time class.

/// Puts the calling thread under SCHED_FIFO at `priority` (1 is the lowest real-time priority),
/// with SCHED_RESET_ON_FORK so threads it creates start under the normal policy.
/// Returns 0, or the errno the kernel gave (EPERM without CAP_SYS_NICE or an RLIMIT_RTPRIO).
int kairos_thread_make_realtime(int priority);

/// 1 when the calling thread runs under a real-time policy, else 0.
int kairos_thread_is_realtime(void);

/// How many CPUs the calling thread may run on (its affinity mask), at least 1.
int kairos_usable_cpus(void);

#endif
