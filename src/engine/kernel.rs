//! Our own matrix-product kernel, for the products whose right operand `B` and output `C` are
//! stored row by row: `C ← A·B` with AVX-512, the left operand read where it lies.
//!
//! `matrixmultiply` copies ("packs") both operands into its tile layout on every call and on
//! every thread; a row-major `A` is gathered one number at a time, and for this model's thin
//! products (`K` or `N` of 32 to 288) the copies take up to two fifths of the product's time. Here nothing
//! is copied: a tile of `C`, [`MR`] rows by [`NR`] columns, lives in 24 registers; each step
//! along `k` loads two 16-wide vectors of a row of `B` and multiplies them by one number of each
//! of the tile's rows of `A`, broadcast — any strides of `A` serve, a row-major one as well as a
//! transposed view. The rows of `B` must be contiguous. A last block of at most 16 columns (784 =
//! 24·32 + 16) is a tile of one vector, not two of which one is all masked off.
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
use std::arch::x86_64::{_mm512_mask_storeu_ps, _mm512_set1_ps, _mm512_setzero_ps};

/// Rows of `C` in a tile.
pub const MR: usize = 12;
/// Columns of `C` in a tile: two 16-wide vectors.
pub const NR: usize = 32;
/// The length of a block along `k`, `matrixmultiply`'s for `f32`.
pub const KC: usize = 256;

/// Which code multiplies: one of our kernels, or `matrixmultiply`'s (which picks its own SIMD for
/// the CPU, and has kernels for ARM too).
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
    /// `portable`; an error names an unknown path, or one this CPU cannot run.
    pub fn from_env() -> Result<Option<Path>, String> {
        let Some(name) = std::env::var_os("DAE_KERNEL") else { return Ok(None) };
        let Some(path) = Path::ALL.into_iter().find(|p| name.to_str() == Some(p.name())) else {
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
/// this CPU has. (A `DAE_KERNEL` that names no path this CPU runs is refused by the command line
/// before anything is multiplied; here it falls back to the CPU's.)
pub fn path() -> Path {
    static PATH: std::sync::OnceLock<Path> = std::sync::OnceLock::new();
    *PATH.get_or_init(|| Path::from_env().ok().flatten().unwrap_or_else(Path::detected))
}

/// Whether the products go through one of our kernels ([`path`] is not [`Path::Portable`]).
pub fn available() -> bool {
    path() != Path::Portable
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

/// `C ← A·B`, finished by `finish`; the shapes and layouts are [`Operands`]'.
///
/// # Safety
/// The CPU must have AVX-512F ([`available`]). Every element the shapes and strides name must
/// lie inside live allocations, `C`'s must be writable and overlap neither `A` nor `B`; so must
/// `finish`'s operands, for `C`'s shape.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub unsafe fn gemm(operands: Operands, finish: Finish) {
    // Each finish compiles into a kernel of its own, so none costs the others a register.
    // SAFETY (all): forwarded; a row `i` and column `j` passed to a finish lie inside `C`, so
    // inside the bias (N numbers) and `a` (C's shape).
    unsafe {
        match finish {
            Finish::Plain => operands.run(|_, _, _, s| s),
            Finish::Bias(bias) => operands.run(move |_, j, columns, s| add(s, load(bias.add(j), columns))),
            Finish::BiasRelu(bias) => operands.run(move |_, j, columns, s| {
                // `max(z, 0)` is 0 for a NaN `z`, as Rust's `f32::max` is.
                let [z_low, z_high] = add(s, load(bias.add(j), columns));
                let zero = _mm512_setzero_ps();
                [_mm512_max_ps(z_low, zero), _mm512_max_ps(z_high, zero)]
            }),
            Finish::ReluSlope(a, rs) => operands.run(move |i, j, columns, s| {
                // Kept where `a ≤ 0` is false, so also where `a` is NaN, as `Activation::backward` does.
                let [a_low, a_high] = load(a.offset(i as isize * rs).add(j), columns);
                let keep = |a| _mm512_cmp_ps_mask::<_CMP_NLE_UQ>(a, _mm512_setzero_ps());
                [_mm512_maskz_mov_ps(keep(a_low), s[0]), _mm512_maskz_mov_ps(keep(a_high), s[1])]
            }),
        }
    }
}

/// The numbers of a row of a tile at `p`, its existing columns only (the others 0), in its
/// first `V` 16-wide vectors.
///
/// # Safety
/// `p` points to the row's first number, and its existing columns are readable.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn load<const V: usize>(p: *const f32, columns: Columns) -> [__m512; V] {
    // SAFETY: the caller's contract; the other lanes are masked off.
    std::array::from_fn(|h| unsafe { _mm512_maskz_loadu_ps(columns.0[h], p.add(16 * h)) })
}

/// Stores the first `V` vectors of a row of a tile at `p`, its existing columns only.
///
/// # Safety
/// `p` points to the row's first number, and its existing columns are writable.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn store<const V: usize>(p: *mut f32, columns: Columns, x: [__m512; V]) {
    for (h, x) in x.into_iter().enumerate() {
        // SAFETY: the caller's contract; the other lanes are masked off.
        unsafe { _mm512_mask_storeu_ps(p.add(16 * h), columns.0[h], x) };
    }
}

/// `x + y`, vector by vector.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn add<const V: usize>(x: [__m512; V], y: [__m512; V]) -> [__m512; V] {
    std::array::from_fn(|h| _mm512_add_ps(x[h], y[h]))
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

#[cfg(target_arch = "x86_64")]
impl Operands {
    /// The product tile by tile; `finish(i, j, columns, s)` gives row `i` of `C` at columns
    /// `j…` from their sums `s`, when they are stored the last time.
    ///
    /// # Safety
    /// As [`gemm`]'s.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn run<F>(self, finish: F)
    where
        F: Fn(usize, usize, Columns, [__m512; 2]) -> [__m512; 2] + Copy,
    {
        let Operands { dims: (m, k, n), a, a_strides: (rsa, csa), b, rsb, c, rsc } = self;
        // One block even when `k` is 0: its tiles, of depth 0, store (finished) zeros.
        for first in (0..k.max(1)).step_by(KC) {
            let depth = KC.min(k - first);
            // SAFETY (all offsets below): inside the operands by the caller's contract.
            let (a, b) = unsafe { (a.offset(first as isize * csa), b.offset(first as isize * rsb)) };
            for j in (0..n).step_by(NR) {
                let width = NR.min(n - j);
                let columns = Columns::new(width);
                for i in (0..m).step_by(MR) {
                    let tile = Tile {
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
                    // A last block of columns no wider than one vector multiplies that vector
                    // alone: half the multiply-adds of a full tile, none of them on zeros.
                    unsafe {
                        match width {
                            ..=16 => tile.run::<1>(MR.min(m - i)),
                            _ => tile.run::<2>(MR.min(m - i)),
                        }
                    };
                }
            }
        }
    }
}

/// Which of a tile's [`NR`] columns exist: one lane mask per 16-wide half.
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy)]
struct Columns([__mmask16; 2]);

#[cfg(target_arch = "x86_64")]
impl Columns {
    /// The first `width` columns, `1 ≤ width ≤ NR`.
    fn new(width: usize) -> Columns {
        let lanes = |w: usize| if w >= 16 { 0xffff } else { ((1u32 << w) - 1) as __mmask16 };
        Columns([lanes(width), lanes(width.saturating_sub(16))])
    }
}

/// One tile of `C`: its first row of `A`, its `depth` rows of `B` (a block along `k`),
/// whether to add the block's sums to `C` or to overwrite it, and how to finish them (after the
/// last block).
#[cfg(target_arch = "x86_64")]
struct Tile<F> {
    depth: usize,
    a: *const f32,
    a_strides: (isize, isize),
    b: *const f32,
    rsb: isize,
    c: *mut f32,
    rsc: isize,
    columns: Columns,
    accumulate: bool,
    /// The row and column of `C` where the tile starts.
    at: (usize, usize),
    /// After the last block, the finish of [`Operands::run`].
    finish: Option<F>,
}

#[cfg(target_arch = "x86_64")]
impl<F> Tile<F>
where
    F: Fn(usize, usize, Columns, [__m512; 2]) -> [__m512; 2] + Copy,
{
    /// The tile with its first `rows` rows (`1 ≤ rows ≤ MR`) and its first `V` vectors of
    /// columns (1 or 2); the row count is a constant in each case, so the accumulators stay in
    /// registers.
    ///
    /// # Safety
    /// As [`gemm`]'s, for the tile; with `V = 1`, the tile's columns past the first 16 do not
    /// exist.
    #[target_feature(enable = "avx512f")]
    unsafe fn run<const V: usize>(&self, rows: usize) {
        // SAFETY: forwarded.
        unsafe {
            match rows {
                12 => self.rows::<12, V>(),
                11 => self.rows::<11, V>(),
                10 => self.rows::<10, V>(),
                9 => self.rows::<9, V>(),
                8 => self.rows::<8, V>(),
                7 => self.rows::<7, V>(),
                6 => self.rows::<6, V>(),
                5 => self.rows::<5, V>(),
                4 => self.rows::<4, V>(),
                3 => self.rows::<3, V>(),
                2 => self.rows::<2, V>(),
                _ => self.rows::<1, V>(),
            }
        }
    }

    /// `acc[r] = Σₚ A[r, p]·B[p, ·]` over the block, one fused multiply-add per term in order of
    /// `p`; then `C[r, ·] ← acc[r]`, or `C[r, ·] + acc[r]` after the first block, finished.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn rows<const R: usize, const V: usize>(&self) {
        let (rsa, csa) = self.a_strides;
        let mut acc: [[__m512; V]; R] = [[_mm512_setzero_ps(); V]; R];
        let (mut a, mut b) = (self.a, self.b);
        for _ in 0..self.depth {
            // SAFETY: row `p` of the block of `B` and column `p` of the tile's rows of `A`.
            unsafe {
                let b_row: [__m512; V] = load(b, self.columns);
                for (r, acc) in acc.iter_mut().enumerate() {
                    let a_rp = _mm512_set1_ps(*a.offset(r as isize * rsa));
                    for (acc, b) in acc.iter_mut().zip(b_row) {
                        *acc = _mm512_fmadd_ps(a_rp, b, *acc);
                    }
                }
                a = a.offset(csa);
                b = b.offset(self.rsb);
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            // SAFETY: row `r` of the tile of `C`, its existing columns only (masked).
            unsafe {
                let c = self.c.offset(r as isize * self.rsc);
                let mut sums = *acc;
                if self.accumulate {
                    sums = add(load(c, self.columns), sums);
                }
                if let Some(finish) = self.finish {
                    // The finishes work on a whole tile row; a one-vector row's second is empty.
                    let whole = std::array::from_fn(|h| sums.get(h).copied().unwrap_or(_mm512_setzero_ps()));
                    let done = finish(self.at.0 + r, self.at.1, self.columns, whole);
                    sums = std::array::from_fn(|h| done[h]);
                }
                store(c, self.columns, sums);
            }
        }
    }
}

/// `out[p·ldo + j] = m[j·ld + p]` for `j < n`, `p < rows`: `Mᵀ` row by row, where `M`
/// (N, rows) is row-major with row stride `ld`, into rows `ldo` apart. Blocks of 16×16 are
/// transposed in registers; a copy one number at a time wrote rows 512 bytes apart for
/// `N = 128`, all in the same few sets of the L1 cache, and took as long as the product it fed.
///
/// # Safety
/// The CPU must have AVX-512F ([`available`]); `m` must hold `M[j, p]` for those `j` and `p`,
/// and `out` the `n` numbers from `p·ldo` for each `p < rows`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub unsafe fn transpose(m: *const f32, ld: usize, n: usize, rows: usize, out: *mut f32, ldo: usize) {
    for j0 in (0..n).step_by(16) {
        let width = 16.min(n - j0);
        for p0 in (0..rows).step_by(16) {
            let height = 16.min(rows - p0);
            let (in_lanes, out_lanes) = (Columns::new(height).0[0], Columns::new(width).0[0]);
            // SAFETY: rows `j0…j0 + width` of `M` at columns `p0…`, `height` of them;
            // the other lanes are masked off.
            let mut r: [__m512; 16] = [_mm512_setzero_ps(); 16];
            for (jj, r) in r.iter_mut().enumerate().take(width) {
                *r = unsafe { _mm512_maskz_loadu_ps(in_lanes, m.add((j0 + jj) * ld + p0)) };
            }
            let t = transpose16(r);
            for (pp, t) in t.iter().enumerate().take(height) {
                // SAFETY: row `p0 + pp < rows` of `out`, columns `j0…j0 + width < n`.
                unsafe { _mm512_mask_storeu_ps(out.add((p0 + pp) * ldo + j0), out_lanes, *t) };
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
