import CMimalloc

#if canImport(Glibc)
import Glibc
#endif

/// Which allocator serves `malloc` in this process.
///
/// Kairos's executables link Debian's mimalloc, which then replaces the C library's `malloc` for the
/// whole process (Swift's runtime included). A contact's state, an event and its dictionaries are
/// many small objects, often freed on another thread than the one that made them; glibc's malloc
/// spent about a tenth of replay and ingest in its own bookkeeping (`docs/performance.md`).
public enum MemoryAllocator {
    /// "mimalloc 2.0.9" when mimalloc serves `malloc`, otherwise "the C library's malloc".
    public static var description: String {
        guard isMimalloc else { return "the C library's malloc" }
        let version = Int(mi_version())
        return "mimalloc \(version / 100).\(version / 10 % 10).\(version % 10)"
    }

    /// Whether a block from `malloc` lies in mimalloc's heap: the override is really in effect.
    public static var isMimalloc: Bool {
        guard let probe = malloc(64) else { return false }
        defer { free(probe) }
        return mi_is_in_heap_region(probe)
    }
}
