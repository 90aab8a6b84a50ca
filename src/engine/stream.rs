//! Writing memory that another core has read: streaming stores, which go to memory without
//! first taking the lines from the caches that hold them.
//!
//! Why: in the data-parallel step every thread reads all of `W` in its forward pass, and each
//! writes its own rows of `W` in the update ([`crate::engine::dense::Update::sum_and_step`]). An ordinary
//! store into a line that the other core holds must first take the line from it. On a Zen 4 VM
//! whose two vCPUs sat far apart (a cross-core round trip of ~500 ns instead of ~100), those
//! takes made the update 4.5× as long: 0.25 s over two epochs against 0.056 s near, and 0.056 s
//! far too with `W` left untouched. A streaming store writes the whole line to memory and drops
//! every cached copy without waiting for one: 0.076 s far (docs/performance.md, "`W` streamed
//! into memory"). The next forward pass then reads those rows from memory, which costs a thread
//! alone, or two on cores near each other, more than it saves: [`crate::engine::dense::Write`]
//! says when to stream.

/// Copies `src` into `dst` (the same length) with streaming stores where the CPU has them
/// (x86-64: `movntps`, 16 bytes at a time from `dst`'s first 16-byte boundary; the few floats
/// before it and after the last whole 16 bytes by ordinary stores).
///
/// ```
/// use dae::engine::stream;
///
/// let src: Vec<f32> = (1..=37).map(|i| i as f32).collect();
/// let mut dst = vec![0.0; 40];
/// {
///     let _fence = stream::Fence;
///     // SAFETY: `_fence` runs `fence` when the scope ends, before `dst` is read.
///     unsafe { stream::copy(&mut dst[1..38], &src) }; // a head, 16-byte pieces, a tail
/// }
/// assert_eq!((dst[0], &dst[1..38], dst[38]), (0.0, &src[..], 0.0));
/// ```
///
/// # Safety
/// The calling thread runs [`fence`] before any other access to `dst`, its own included (the
/// rule of `_mm_stream_ps`): hold a [`Fence`] across the copies, which runs it however the
/// scope ends.
pub unsafe fn copy(dst: &mut [f32], src: &[f32]) {
    assert_eq!(dst.len(), src.len(), "a copy of the same length");
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_loadu_ps, _mm_stream_ps};
        let head = dst.as_ptr().align_offset(16).min(dst.len());
        let ((dst_head, dst), (src_head, src)) = (dst.split_at_mut(head), src.split_at(head));
        dst_head.copy_from_slice(src_head);
        let (mut dst, mut src) = (dst.chunks_exact_mut(4), src.chunks_exact(4));
        for (d, s) in (&mut dst).zip(&mut src) {
            // SAFETY: `d` is 4 floats from a 16-byte boundary and `s` 4 floats; SSE is part of
            // x86-64.
            unsafe { _mm_stream_ps(d.as_mut_ptr(), _mm_loadu_ps(s.as_ptr())) };
        }
        dst.into_remainder().copy_from_slice(src.remainder());
    }
    #[cfg(not(target_arch = "x86_64"))]
    dst.copy_from_slice(src);
}

/// Orders every streaming store before it ahead of the stores after it (`sfence`): what
/// [`copy`] wrote is then there for any access, and for another thread told so by a release
/// store (which orders ordinary stores, not streaming ones).
pub fn fence() {
    // SAFETY: `sfence` only orders stores; SSE is part of x86-64.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::x86_64::_mm_sfence()
    };
}

/// Runs [`fence`] when dropped: held across [`copy`]s, on every way out of the scope, a
/// panic's included.
#[derive(Debug)]
pub struct Fence;

impl Drop for Fence {
    fn drop(&mut self) {
        fence();
    }
}
