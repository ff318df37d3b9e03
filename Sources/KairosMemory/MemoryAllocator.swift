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
    /// "mimalloc 2.0.9" when mimalloc serves `malloc` (", 2 MiB pages" when it asks for them),
    /// otherwise "the C library's malloc".
    public static var description: String {
        guard isMimalloc else { return "the C library's malloc" }
        let version = Int(mi_version())
        let pages = usesLargePages ? ", 2 MiB pages" : ""
        return "mimalloc \(version / 100).\(version / 10 % 10).\(version % 10)\(pages)"
    }

    /// Asks mimalloc to back the memory it maps from now on with 2 MiB pages (transparent huge
    /// pages, which it requests with `madvise`), unless the environment already sets
    /// `MIMALLOC_LARGE_OS_PAGES`. A million contacts' state on 4 KiB pages misses the TLB on
    /// nearly every contact an event touches: restarts ran about a tenth faster with less than
    /// half the system time (`docs/performance.md`). Executables call this first thing.
    public static func useLargePages() {
        guard isMimalloc, getenv("MIMALLOC_LARGE_OS_PAGES") == nil else { return }
        mi_option_enable(mi_option_large_os_pages)
    }

    /// Whether mimalloc asks for 2 MiB pages.
    public static var usesLargePages: Bool { isMimalloc && mi_option_is_enabled(mi_option_large_os_pages) }

    /// Whether a block from `malloc` lies in mimalloc's heap: the override is really in effect.
    public static var isMimalloc: Bool {
        guard let probe = malloc(64) else { return false }
        defer { free(probe) }
        return mi_is_in_heap_region(probe)
    }
}
