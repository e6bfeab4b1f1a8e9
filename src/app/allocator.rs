//! The process's allocator.

/// mimalloc rather than glibc's malloc: a step allocates and frees many small strings (prose
/// rules, JSON), and glibc's allocator, with its locks between threads, took a quarter of the
/// zero-latency benchmark's CPU (BENCHMARKS.md, issue 24). Built without transparent huge
/// pages and told to return freed pages at once (see [`configure`]): with its defaults the
/// thousand-book benchmark peaked at 105-111 MiB, over its 100 MiB budget.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` of mimalloc v3's `mimalloc.h` (the `mi_option_e` enum's 16th entry;
/// the Rust bindings do not name it): milliseconds before freed memory goes back to the system.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Sets the allocator's options; called first thing in `main`.
pub fn configure() {
    // SAFETY: `mi_option_set` stores an option's value and nothing else; the option is a valid
    // `mi_option_e` of the mimalloc this binary links (v3, `MI_OPTION_PURGE_DELAY`).
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}
