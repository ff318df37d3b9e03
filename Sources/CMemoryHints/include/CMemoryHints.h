#ifndef KAIROS_CMEMORYHINTS_H
#define KAIROS_CMEMORYHINTS_H

// Cache hints Swift has no spelling for. A hint never faults and never changes what a program
// computes: an address that is stale or null only wastes the hint.

/// Starts loading the cache line at `address` for a write soon (into every cache level).
static inline void kairos_prefetch_for_write(const void *address) {
    __builtin_prefetch(address, 1, 3);
}

#endif
