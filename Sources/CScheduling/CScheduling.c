#define _GNU_SOURCE
#include "CScheduling.h"

#include <errno.h>
#include <sched.h>

int kairos_thread_make_realtime(int priority) {
    struct sched_param parameters = {.sched_priority = priority};
    // On Linux, pid 0 means the calling thread, not the whole process.
    if (sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &parameters) != 0) return errno;
    return 0;
}

int kairos_thread_is_realtime(void) {
    int policy = sched_getscheduler(0) & ~SCHED_RESET_ON_FORK;
    return policy == SCHED_FIFO || policy == SCHED_RR;
}

int kairos_usable_cpus(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
    int count = CPU_COUNT(&set);
    return count > 0 ? count : 1;
}
