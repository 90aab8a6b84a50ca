//! A hint to the CPU's caches: fetch this, I will need it soon.
//!
//! For memory whose next use the hardware cannot foresee: the training images, read in shuffled
//! order ([`crate::data::noise::corrupt_rows`]). (Weights and moments, read in order, the
//! hardware fetches on its own; prefetching them measured no faster, docs/performance.md.)

/// Asks the CPU to bring `data` into its cache, without waiting for it.
///
/// ```
/// // Elements of any size, larger than a cache line too.
/// dae::engine::prefetch::prefetch(&[[0u8; 200]; 3]);
/// dae::engine::prefetch::prefetch(&[0.0f32; 100]);
/// ```
pub fn prefetch<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    for line in data.chunks((64 / size_of::<T>().max(1)).max(1)) {
        // SAFETY: a prefetch reads nothing architecturally and cannot fault; SSE is part of x86-64.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(line.as_ptr().cast())
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}
