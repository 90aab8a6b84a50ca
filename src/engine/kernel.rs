//! Our own matrix-product kernel, for the products whose right operand `B` and output `C` are
//! stored row by row: `C ← A·B` with AVX-512, the left operand read where it lies.
//!
//! `matrixmultiply` copies ("packs") both operands into its tile layout on every call and on
//! every thread; a row-major `A` is gathered one number at a time, and for this model's thin
//! products (`K` or `N` of 32 to 288) the copies take up to two fifths of the product's time. Here nothing
//! is copied: a tile of `C`, 12 rows by 32 columns, lives in 24 registers; each step
//! along `k` loads two 16-wide vectors of a row of `B` and multiplies them by one number of each
//! of the tile's rows of `A`, broadcast — any strides of `A` serve, a row-major one as well as a
//! transposed view. The rows of `B` must be contiguous. A last block of at most 16 columns (784 =
//! 24·32 + 16) is a tile of one vector, not two of which one is all masked off.
//!
//! The tile loop is written once, generic over the instruction set (a `Lanes` trait): AVX-512 here,
//! AVX2 in [`crate::engine::kernel_avx2`], each compiled into an entry point of its own.
//!
//! A tile can also finish its sums before it stores them the last time ([`Finish`]): add a
//! bias, take ReLU, or zero them where ReLU's output was 0 — a layer's elementwise work done in
//! registers rather than in a pass over `C` after the product.
//!
//! The same numbers as `matrixmultiply`, bit for bit: every output is summed over `k` in blocks
//! of [`KC`], each block from zero with one fused multiply-add per term in order, and the
//! blocks added to `C` one after another, which is what its AVX-512 kernel does. The kernel is
//! compiled into every x86-64 build, for AVX-512 whatever the build's target, beside its AVX2
//! twin ([`crate::engine::kernel_avx2`]); [`path`] decides when the program starts which of the
//! two this CPU runs, or whether `matrixmultiply` does the products.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{__m512, __mmask16, _mm512_add_ps, _mm512_fmadd_ps, _mm512_maskz_loadu_ps};
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{_CMP_NLE_UQ, _mm512_cmp_ps_mask, _mm512_maskz_mov_ps, _mm512_max_ps};
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{
    _mm512_loadu_ps, _mm512_mask_storeu_ps, _mm512_set1_ps, _mm512_setzero_ps, _mm512_storeu_ps,
};

/// The length of a block along `k`, `matrixmultiply`'s for `f32`.
pub const KC: usize = 256;

/// Which code multiplies: one of our kernels, or `matrixmultiply`'s (which picks its own SIMD for
/// the CPU, and has kernels for ARM too); and which instruction set the rest of a step uses
/// ([`path`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// [`gemm`], on a CPU with AVX-512.
    Avx512,
    /// [`crate::engine::kernel_avx2::gemm`], on a CPU with AVX2 and FMA.
    Avx2,
    /// `matrixmultiply::sgemm`, on any CPU.
    Portable,
}

impl Path {
    /// Every path, fastest first.
    pub const ALL: [Path; 3] = [Path::Avx512, Path::Avx2, Path::Portable];

    /// The name `DAE_KERNEL` uses.
    pub fn name(self) -> &'static str {
        match self {
            Path::Avx512 => "avx512",
            Path::Avx2 => "avx2",
            Path::Portable => "portable",
        }
    }

    /// What the products run on, for `--profile`.
    pub fn describe(self) -> &'static str {
        match self {
            Path::Avx512 => "our AVX-512 kernel",
            Path::Avx2 => "our AVX2 kernel",
            Path::Portable => "matrixmultiply",
        }
    }

    /// Whether this CPU can run the path, asked of the CPU when the program runs (whatever the
    /// build was compiled for).
    pub fn supported(self) -> bool {
        match self {
            Path::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Path::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Path::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(not(target_arch = "x86_64"))]
            Path::Avx512 | Path::Avx2 => false,
        }
    }

    /// The fastest path this CPU has.
    pub fn detected() -> Path {
        Path::ALL.into_iter().find(|p| p.supported()).unwrap_or(Path::Portable)
    }

    /// The path the environment variable `DAE_KERNEL` forces, if it is set: `avx512`, `avx2` or
    /// `portable` (in any case, spaces around it ignored, as `DAE_MEMORY`'s units are); an error
    /// names an unknown path, or one this CPU cannot run.
    pub fn from_env() -> Result<Option<Path>, String> {
        let Some(name) = std::env::var_os("DAE_KERNEL") else { return Ok(None) };
        let given = name.to_str().map(|n| n.trim().to_ascii_lowercase());
        let Some(path) = Path::ALL.into_iter().find(|p| given.as_deref() == Some(p.name())) else {
            let name = name.to_string_lossy();
            return Err(format!("DAE_KERNEL={name}: expected avx512, avx2 or portable"));
        };
        if !path.supported() {
            let has = Path::ALL.iter().filter(|p| p.supported()).map(|p| p.name()).collect::<Vec<_>>();
            let name = path.name();
            return Err(format!("DAE_KERNEL={name}: this CPU cannot run it; it runs {}", has.join(", ")));
        }
        Ok(Some(path))
    }
}

/// The path every product takes, chosen once: the one `DAE_KERNEL` forces, else the fastest
/// this CPU has. A `DAE_KERNEL` that names no path this CPU runs is refused by the command line
/// before anything is multiplied; in a program of the library's own (a test, a bench, an
/// example) it panics here with the same message, rather than run a path it was not asked for.
/// The elementwise loops' copies (`fastmath::for_this_cpu!`) follow it too, so that `DAE_KERNEL=avx2` runs a whole step
/// as an AVX2 machine would (`portable`: as built, which for the default build is the baseline
/// x86-64, a library call for every `mul_add`).
pub fn path() -> Path {
    static PATH: std::sync::OnceLock<Path> = std::sync::OnceLock::new();
    *PATH.get_or_init(|| match Path::from_env() {
        Ok(path) => path.unwrap_or_else(Path::detected),
        Err(message) => panic!("{message}"),
    })
}

/// What a tile does to its sums `S = A·B` before it stores them the last time: the formulas
/// are [`crate::engine::gemm::Finish`]'s, for the work whose pointers are given here.
#[derive(Debug, Clone, Copy)]
pub enum Finish {
    /// `C = S`.
    Plain,
    /// `C = S + 1·bᵀ`, with `b`'s `N` numbers at the pointer.
    Bias(*const f32),
    /// `C = max(S + 1·bᵀ, 0)`: ReLU after the bias.
    BiasRelu(*const f32),
    /// `C = S ⊙ [a > 0]`, with `a` (M, N) at the pointer, rows contiguous and the given stride
    /// apart: ReLU's derivative, read off its output `a`.
    ReluSlope(*const f32, isize),
}

/// `C ← A·B`, finished by `finish`, with AVX-512; the shapes and layouts are [`Operands`]'.
///
/// # Safety
/// The CPU must have AVX-512F. Every element the shapes and strides name must lie inside live
/// allocations, `C`'s must be writable and overlap neither `A` nor `B`; so must `finish`'s
/// operands, for `C`'s shape.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub unsafe fn gemm(operands: Operands, finish: Finish) {
    // SAFETY: forwarded; the CPU has AVX-512F, which this function is compiled for and into which
    // the generic kernel and `Avx512`'s operations are inlined.
    unsafe { gemm_with::<Avx512>(operands, finish) }
}

/// The operands of [`gemm`]: `A` (M, K) at `a` with strides `(rsa, csa)`; `B` (K, N) at `b`,
/// row stride `rsb`, its rows contiguous; `C` (M, N) at `c`, row stride `rsc`, rows contiguous.
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy)]
#[allow(missing_docs)]
pub struct Operands {
    /// `(M, K, N)`.
    pub dims: (usize, usize, usize),
    pub a: *const f32,
    /// `(rsa, csa)`.
    pub a_strides: (isize, isize),
    pub b: *const f32,
    pub rsb: isize,
    pub c: *mut f32,
    pub rsc: isize,
}

/// An instruction set the kernel is written for: its vector of `f32` lanes, a tile's rows, and the
/// handful of operations a tile needs. Every operation is `#[inline(always)]`, so that it is
/// compiled into the entry point of its instruction set ([`gemm`],
/// [`kernel_avx2::gemm`](crate::engine::kernel_avx2::gemm)), whose `#[target_feature]` it
/// takes; called anywhere else, each is unsafe on a CPU without that instruction set.
#[cfg(target_arch = "x86_64")]
pub(crate) trait Lanes {
    /// A vector of [`Lanes::LANES`] numbers.
    type V: Copy;
    /// Which lanes of a vector hold existing columns.
    type Mask: Copy;
    /// Numbers in a vector; a tile is two vectors wide.
    const LANES: usize;
    /// Rows of `C` in a tile: as many as keep its accumulators, the two vectors of a row of `B`
    /// and one broadcast number of `A` in registers.
    const MR: usize;
    /// The first `width` lanes (all of them when `width ≥ LANES`).
    unsafe fn mask(width: usize) -> Self::Mask;
    /// Every lane 0.
    unsafe fn zero() -> Self::V;
    /// Every lane `x`.
    unsafe fn splat(x: f32) -> Self::V;
    /// `a·b + c`, one rounding.
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `x + y`.
    unsafe fn add(x: Self::V, y: Self::V) -> Self::V;
    /// `max(z, 0)`, which is 0 for a NaN `z`, as Rust's `f32::max` is.
    unsafe fn relu(z: Self::V) -> Self::V;
    /// `s` where `a ≤ 0` is false (so also where `a` is NaN, as `Activation::backward` does), else +0.
    unsafe fn where_positive(a: Self::V, s: Self::V) -> Self::V;
    /// The lanes of `mask` from `p`, the others 0.
    unsafe fn load(p: *const f32, mask: Self::Mask) -> Self::V;
    /// All lanes from `p`.
    unsafe fn load_all(p: *const f32) -> Self::V;
    /// The lanes of `mask` to `p`.
    unsafe fn store(p: *mut f32, mask: Self::Mask, x: Self::V);
    /// All lanes to `p`.
    unsafe fn store_all(p: *mut f32, x: Self::V);
}

/// The finishes of [`Finish`] as `finish(i, j, columns, full, s)`: row `i` of `C` at columns `j…`
/// from their sums `s` (`full`: both vectors' columns all exist), and the product through [`run`]
/// with each, a kernel of its own.
///
/// # Safety
/// As [`gemm`]'s, for the instruction set of `L`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) unsafe fn gemm_with<L: Lanes>(operands: Operands, finish: Finish) {
    // SAFETY (all): forwarded; a row `i` and column `j` passed to a finish lie inside `C`, so
    // inside the bias (N numbers) and `a` (C's shape).
    unsafe {
        match finish {
            Finish::Plain => run::<L, _>(operands, |_, _, _, _, s| s),
            Finish::Bias(bias) => run::<L, _>(operands, move |_, j, columns, full, s| {
                add::<L>(s, load::<L, 2>(bias.add(j), columns, full))
            }),
            Finish::BiasRelu(bias) => run::<L, _>(operands, move |_, j, columns, full, s| {
                add::<L>(s, load::<L, 2>(bias.add(j), columns, full)).map(|z| L::relu(z))
            }),
            Finish::ReluSlope(a, rs) => run::<L, _>(operands, move |i, j, columns, full, s| {
                let a = load::<L, 2>(a.offset(i as isize * rs).add(j), columns, full);
                [L::where_positive(a[0], s[0]), L::where_positive(a[1], s[1])]
            }),
        }
    }
}

/// Which of a tile's columns exist: one lane mask per vector.
#[cfg(target_arch = "x86_64")]
type Columns<L> = [<L as Lanes>::Mask; 2];

/// The numbers of a row of a tile at `p`, its existing columns only (the others 0), in its
/// first `V` vectors: without masks if `full` says all of them exist (a plain load is never
/// slower than a masked one, and on AMD's cores AVX2's masked load is slower; see [`Tile::rows`]
/// for the stores).
///
/// # Safety
/// `p` points to the row's first number, and its existing columns are readable; with `full`,
/// all of its `V` vectors.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn load<L: Lanes, const V: usize>(p: *const f32, columns: Columns<L>, full: bool) -> [L::V; V] {
    std::array::from_fn(|h| {
        // A vector with no existing column may start past the row's end: its address is only
        // computed (wrapping, never dereferenced), and its load is masked off whole.
        let p = p.wrapping_add(L::LANES * h);
        // SAFETY: the caller's contract; the other lanes are masked off.
        unsafe { if full { L::load_all(p) } else { L::load(p, columns[h]) } }
    })
}

/// `x + y`, vector by vector.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn add<L: Lanes>(x: [L::V; 2], y: [L::V; 2]) -> [L::V; 2] {
    // SAFETY: the instruction set's operation, in its kernel.
    unsafe { [L::add(x[0], y[0]), L::add(x[1], y[1])] }
}

/// The product tile by tile; `finish(i, j, columns, full, s)` gives row `i` of `C` at columns
/// `j…` from their sums `s`, when they are stored the last time.
///
/// # Safety
/// As [`gemm`]'s, for the instruction set of `L`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn run<L: Lanes, F>(operands: Operands, finish: F)
where
    F: Fn(usize, usize, Columns<L>, bool, [L::V; 2]) -> [L::V; 2] + Copy,
{
    let Operands { dims: (m, k, n), a, a_strides: (rsa, csa), b, rsb, c, rsc } = operands;
    let (nr, mr) = (2 * L::LANES, L::MR);
    // One block even when `k` is 0: its tiles, of depth 0, store (finished) zeros.
    for first in (0..k.max(1)).step_by(KC) {
        let depth = KC.min(k - first);
        // SAFETY (all offsets below): inside the operands by the caller's contract.
        let (a, b) = unsafe { (a.offset(first as isize * csa), b.offset(first as isize * rsb)) };
        for j in (0..n).step_by(nr) {
            let width = nr.min(n - j);
            // SAFETY: the instruction set's operation, in its kernel.
            let columns = unsafe { [L::mask(width), L::mask(width.saturating_sub(L::LANES))] };
            for i in (0..m).step_by(mr) {
                let tile = Tile::<L, F> {
                    depth,
                    a: unsafe { a.offset(i as isize * rsa) },
                    a_strides: (rsa, csa),
                    b: unsafe { b.add(j) },
                    rsb,
                    c: unsafe { c.offset(i as isize * rsc).add(j) },
                    rsc,
                    columns,
                    accumulate: first > 0,
                    at: (i, j),
                    finish: (first + depth == k).then_some(finish),
                };
                // A last block of columns no wider than one vector multiplies that vector alone:
                // half the multiply-adds of a full tile, none of them on zeros. Only a block
                // narrower than its vectors loads `B` through masks (on AVX2 the masks take
                // registers a full tile needs).
                let rows = mr.min(m - i);
                unsafe {
                    match (width == nr, width > L::LANES, width == L::LANES) {
                        (true, _, _) => tile.run::<2, true>(rows),
                        (false, true, _) => tile.run::<2, false>(rows),
                        (false, false, true) => tile.run::<1, true>(rows),
                        (false, false, false) => tile.run::<1, false>(rows),
                    }
                };
            }
        }
    }
}

/// One tile of `C`: its first row of `A`, its `depth` rows of `B` (a block along `k`),
/// whether to add the block's sums to `C` or to overwrite it, and how to finish them (after the
/// last block).
#[cfg(target_arch = "x86_64")]
struct Tile<L: Lanes, F> {
    depth: usize,
    a: *const f32,
    a_strides: (isize, isize),
    b: *const f32,
    rsb: isize,
    c: *mut f32,
    rsc: isize,
    columns: Columns<L>,
    accumulate: bool,
    /// The row and column of `C` where the tile starts.
    at: (usize, usize),
    /// After the last block, the finish of [`run`].
    finish: Option<F>,
}

#[cfg(target_arch = "x86_64")]
impl<L: Lanes, F> Tile<L, F>
where
    F: Fn(usize, usize, Columns<L>, bool, [L::V; 2]) -> [L::V; 2] + Copy,
{
    /// The tile with its first `rows` rows (`1 ≤ rows ≤ MR ≤ 12`) and its first `V` vectors of
    /// columns (1 or 2), all of whose columns exist if `FULL`; the row count is a constant in
    /// each case, so the accumulators stay in registers.
    ///
    /// # Safety
    /// As [`gemm`]'s, for the tile; with `V = 1`, the tile's columns past the first vector do
    /// not exist.
    #[inline(always)]
    unsafe fn run<const V: usize, const FULL: bool>(&self, rows: usize) {
        // SAFETY: forwarded.
        unsafe {
            match rows {
                12 => self.rows::<12, V, FULL>(),
                11 => self.rows::<11, V, FULL>(),
                10 => self.rows::<10, V, FULL>(),
                9 => self.rows::<9, V, FULL>(),
                8 => self.rows::<8, V, FULL>(),
                7 => self.rows::<7, V, FULL>(),
                6 => self.rows::<6, V, FULL>(),
                5 => self.rows::<5, V, FULL>(),
                4 => self.rows::<4, V, FULL>(),
                3 => self.rows::<3, V, FULL>(),
                2 => self.rows::<2, V, FULL>(),
                _ => self.rows::<1, V, FULL>(),
            }
        }
    }

    /// `acc[r] = Σₚ A[r, p]·B[p, ·]` over the block, one fused multiply-add per term in order of
    /// `p`; then `C[r, ·] ← acc[r]`, or `C[r, ·] + acc[r]` after the first block, finished.
    #[inline(always)]
    unsafe fn rows<const R: usize, const V: usize, const FULL: bool>(&self) {
        let (rsa, csa) = self.a_strides;
        // SAFETY (all): the instruction set's operations, in its kernel; row `p` of the block of
        // `B`, column `p` of the tile's rows of `A` and row `r` of the tile of `C`, its existing
        // columns only (masked, unless `FULL` says all of them exist).
        unsafe {
            let mut acc: [[L::V; V]; R] = [[L::zero(); V]; R];
            let (mut a, mut b) = (self.a, self.b);
            for _ in 0..self.depth {
                let b_row: [L::V; V] = load::<L, V>(b, self.columns, FULL);
                for (r, acc) in acc.iter_mut().enumerate() {
                    let a_rp = L::splat(*a.offset(r as isize * rsa));
                    for (acc, b) in acc.iter_mut().zip(b_row) {
                        *acc = L::fma(a_rp, b, *acc);
                    }
                }
                a = a.offset(csa);
                b = b.offset(self.rsb);
            }
            for (r, acc) in acc.iter().enumerate() {
                let c = self.c.offset(r as isize * self.rsc);
                let mut sums = *acc;
                if self.accumulate {
                    let old = load::<L, V>(c, self.columns, FULL);
                    sums = std::array::from_fn(|h| L::add(old[h], sums[h]));
                }
                if let Some(finish) = self.finish {
                    // The finishes work on a whole tile row; a one-vector row's second is empty.
                    let whole = std::array::from_fn(|h| sums.get(h).copied().unwrap_or(L::zero()));
                    let done = finish(self.at.0 + r, self.at.1, self.columns, FULL && V == 2, whole);
                    sums = std::array::from_fn(|h| done[h]);
                }
                // A full tile stores without masks: AVX2's masked store is slow on AMD's cores,
                // even with every lane on (on a Zen 4 the AVX2 kernel took 7.2 µs for a shard's
                // 64 → 32 product with every store masked, 5.0–5.6 µs without).
                for (h, x) in sums.into_iter().enumerate() {
                    if FULL {
                        L::store_all(c.add(L::LANES * h), x);
                    } else {
                        L::store(c.add(L::LANES * h), self.columns[h], x);
                    }
                }
            }
        }
    }
}

/// AVX-512: 16 lanes, masks in mask registers, 12 rows a tile (24 accumulators of 32 registers).
#[cfg(target_arch = "x86_64")]
struct Avx512;

#[cfg(target_arch = "x86_64")]
impl Lanes for Avx512 {
    type V = __m512;
    type Mask = __mmask16;
    const LANES: usize = 16;
    const MR: usize = 12;
    #[inline(always)]
    unsafe fn mask(width: usize) -> __mmask16 {
        if width >= 16 { 0xffff } else { ((1u32 << width) - 1) as __mmask16 }
    }
    #[inline(always)]
    unsafe fn zero() -> __m512 {
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m512 {
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn add(x: __m512, y: __m512) -> __m512 {
        unsafe { _mm512_add_ps(x, y) }
    }
    #[inline(always)]
    unsafe fn relu(z: __m512) -> __m512 {
        unsafe { _mm512_max_ps(z, _mm512_setzero_ps()) }
    }
    #[inline(always)]
    unsafe fn where_positive(a: __m512, s: __m512) -> __m512 {
        unsafe { _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_NLE_UQ>(a, _mm512_setzero_ps()), s) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32, mask: __mmask16) -> __m512 {
        unsafe { _mm512_maskz_loadu_ps(mask, p) }
    }
    #[inline(always)]
    unsafe fn load_all(p: *const f32) -> __m512 {
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, mask: __mmask16, x: __m512) {
        unsafe { _mm512_mask_storeu_ps(p, mask, x) }
    }
    #[inline(always)]
    unsafe fn store_all(p: *mut f32, x: __m512) {
        unsafe { _mm512_storeu_ps(p, x) }
    }
}

/// `out[p·ldo + j] = m[j·ld + p]` for `j < n`, `p < rows`: `Mᵀ` row by row, where `M`
/// (N, rows) is row-major with row stride `ld`, into rows `ldo` apart, in blocks of 16×16
/// transposed in registers (`transpose_with`). A copy one number at a time wrote rows 512 bytes
/// apart for `N = 128`, all in the same few sets of the L1 cache, and took as long as the product
/// it fed.
///
/// # Safety
/// The CPU must have AVX-512F (`Path::Avx512.supported()`); `m` must hold `M[j, p]` for those `j` and `p`,
/// and `out` the `n` numbers from `p·ldo` for each `p < rows`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub unsafe fn transpose(m: *const f32, ld: usize, n: usize, rows: usize, out: *mut f32, ldo: usize) {
    // SAFETY: forwarded; the CPU has AVX-512F, which this function is compiled for.
    unsafe { transpose_with::<Avx512, 16>(m, ld, n, rows, out, ldo, |r| transpose16(r)) }
}

/// The transposes' loop for the instruction set of `L`, whose vectors have `W` lanes: blocks of
/// `W × W` loaded as `W` rows of `M`, turned by `block` into `W` rows of `Mᵀ`, and stored. A
/// whole block moves without masks: masked, even with every lane on, the first layer's `Wᵀ` took
/// 19–21 µs on a Zen 4 with AVX-512, unmasked 8.5–9.3 (AVX2's masked moves are slow on AMD's
/// cores too); a block at the edge is masked to the numbers that exist.
///
/// # Safety
/// As [`transpose`]'s, for the instruction set of `L` (into whose entry point this is inlined).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) unsafe fn transpose_with<L: Lanes, const W: usize>(
    m: *const f32,
    ld: usize,
    n: usize,
    rows: usize,
    out: *mut f32,
    ldo: usize,
    block: impl Fn([L::V; W]) -> [L::V; W],
) {
    debug_assert_eq!(W, L::LANES, "a block as wide as a vector");
    for j0 in (0..n).step_by(W) {
        let width = W.min(n - j0);
        for p0 in (0..rows).step_by(W) {
            let height = W.min(rows - p0);
            let whole = (width, height) == (W, W);
            // SAFETY (all): the instruction set's operations, in its entry point; row `j0 + jj < n`
            // of `M` at columns `p0…`, `height` of them (all `W` if `whole`), and row
            // `p0 + pp < rows` of `out` at columns `j0…j0 + width ≤ n`; the other lanes masked off.
            unsafe {
                let (in_lanes, out_lanes) = (L::mask(height), L::mask(width));
                let mut r = [L::zero(); W];
                for (jj, r) in r.iter_mut().enumerate().take(width) {
                    let from = m.add((j0 + jj) * ld + p0);
                    *r = if whole { L::load_all(from) } else { L::load(from, in_lanes) };
                }
                for (pp, t) in block(r).into_iter().enumerate().take(height) {
                    let to = out.add((p0 + pp) * ldo + j0);
                    if whole { L::store_all(to, t) } else { L::store(to, out_lanes, t) }
                }
            }
        }
    }
}

/// The transpose of a 16×16 block held as 16 rows: 32-bit, 64-bit and two 128-bit interleaves.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
    use std::arch::x86_64::{
        _mm512_castpd_ps, _mm512_castps_pd, _mm512_shuffle_f32x4, _mm512_unpackhi_pd, _mm512_unpackhi_ps,
        _mm512_unpacklo_pd, _mm512_unpacklo_ps,
    };
    let mut t = [_mm512_setzero_ps(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    let mut u = [_mm512_setzero_ps(); 16];
    for q in 0..4 {
        let (a, b, c, d) = (t[4 * q], t[4 * q + 1], t[4 * q + 2], t[4 * q + 3]);
        let pd = |x: __m512| _mm512_castps_pd(x);
        u[4 * q] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(a), pd(c)));
        u[4 * q + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(a), pd(c)));
        u[4 * q + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(b), pd(d)));
        u[4 * q + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(b), pd(d)));
    }
    let mut v = [_mm512_setzero_ps(); 16];
    for h in 0..2 {
        for i in 0..4 {
            v[8 * h + i] = _mm512_shuffle_f32x4::<0x88>(u[8 * h + i], u[8 * h + 4 + i]);
            v[8 * h + 4 + i] = _mm512_shuffle_f32x4::<0xdd>(u[8 * h + i], u[8 * h + 4 + i]);
        }
    }
    let mut w = [_mm512_setzero_ps(); 16];
    for i in 0..8 {
        w[i] = _mm512_shuffle_f32x4::<0x88>(v[i], v[8 + i]);
        w[8 + i] = _mm512_shuffle_f32x4::<0xdd>(v[i], v[8 + i]);
    }
    w
}
