//! The C allocator's arenas, for programs that run many objects in one process. The library
//! never changes them itself: [`one_arena`] is for a binary's `main` (the CLI, the examples and
//! the Lambda bootstraps call it), and an embedder keeps whatever allocator it chose.
//!
//! glibc's malloc gives threads arenas of their own (up to eight a core) and hands little of
//! their freed memory back to the system. A run rewrites each row group with a helper thread, so
//! its buffers spread over many arenas and its resident memory grows with the number of objects:
//! 205 MB after 10 files of 10 MB and 423 MB after 150 at concurrency 1 on this project's
//! 2-core machine. With one arena it stays flat (45 MB and 50 MB), and runs take within 8% of the
//! time (`scripts/memory_bench.sh`; BENCHMARKS.md). jemalloc (96 MB and 142 MB) and mimalloc
//! (228 MB and 578 MB) were measured there too and hold more.

/// Puts glibc's malloc on one arena, unless `MALLOC_ARENA_MAX` is set (which glibc reads
/// itself); returns whether it did. Call it first in `main`, before other threads start. A no-op
/// returning `false` where the C library is not glibc.
///
/// ```
/// fn main() {
///     pqmigrate_core::malloc::one_arena();
///     // ... the program
/// }
/// # main();
/// ```
pub fn one_arena() -> bool {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return false;
    }
    set_one_arena()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set_one_arena() -> bool {
    // SAFETY: mallopt only sets a tunable of glibc's allocator; it takes no pointers and is
    // called with a documented parameter and value.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_one_arena() -> bool {
    false
}
