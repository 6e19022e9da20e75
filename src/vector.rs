//! Bandwidth-bound vector kernels of the Krylov solvers, fused so that each
//! iteration streams every vector as few times as possible. All of them cut
//! the vectors into fixed blocks of `BLOCK` entries (see `crate::parallel`),
//! so reductions do not depend on the thread count.

use crate::parallel::{for_blocks, sum_blocks, DisjointSlice};
use crate::scalar::Real;
use std::ops::Range;

/// Entries per block of the vector kernels (64 KiB of f64).
pub(crate) const BLOCK: usize = 8192;

fn num_blocks(n: usize) -> usize {
    n.div_ceil(BLOCK)
}

fn block(b: usize, n: usize) -> Range<usize> {
    b * BLOCK..((b + 1) * BLOCK).min(n)
}

/// Returns xᵀy.
pub fn dot(x: &[f64], y: &[f64]) -> f64 {
    assert_eq!(x.len(), y.len());
    let n = x.len();
    sum_blocks(num_blocks(n), 2 * n, |b| {
        let r = block(b, n);
        x[r.clone()].iter().zip(&y[r]).map(|(a, b)| a * b).sum()
    })
}

/// maxᵢ |xᵢ| (0 for an empty vector; NaN when an entry is NaN).
pub fn max_abs(x: &[f64]) -> f64 {
    x.iter().fold(0.0, |m: f64, v| {
        if v.is_nan() || m.is_nan() {
            f64::NAN
        } else {
            m.max(v.abs())
        }
    })
}

/// Returns ‖x‖₂.
pub fn norm2(x: &[f64]) -> f64 {
    dot(x, x).sqrt()
}

/// y ← x, in parallel.
pub fn copy(x: &[f64], y: &mut [f64]) {
    assert_eq!(x.len(), y.len());
    let n = x.len();
    let y = DisjointSlice::new(y);
    for_blocks(num_blocks(n), 2 * n, |b| {
        let r = block(b, n);
        // SAFETY: blocks are disjoint.
        unsafe { y.range(r.clone()) }.copy_from_slice(&x[r]);
    });
}

/// y ← b − y (turns y = A x into the residual), returns ‖b − A x‖².
pub fn residual_from_product(b: &[f64], y: &mut [f64]) -> f64 {
    assert_eq!(b.len(), y.len());
    let n = b.len();
    let y = DisjointSlice::new(y);
    sum_blocks(num_blocks(n), 2 * n, |blk| {
        let r = block(blk, n);
        // SAFETY: blocks are disjoint.
        let y = unsafe { y.range(r.clone()) };
        let mut s = 0.0;
        for (yi, bi) in y.iter_mut().zip(&b[r]) {
            *yi = bi - *yi;
            s += *yi * *yi;
        }
        s
    })
}

/// The CG update: x ← x + α p, r ← r − α q; returns ‖r‖² of the new r.
pub fn cg_update(alpha: f64, p: &[f64], q: &[f64], x: &mut [f64], r: &mut [f64]) -> f64 {
    let n = x.len();
    assert!(p.len() == n && q.len() == n && r.len() == n);
    let (x, r) = (DisjointSlice::new(x), DisjointSlice::new(r));
    sum_blocks(num_blocks(n), 6 * n, |blk| {
        let range = block(blk, n);
        // SAFETY: blocks are disjoint.
        let (x, r) = unsafe { (x.range(range.clone()), r.range(range.clone())) };
        let (p, q) = (&p[range.clone()], &q[range]);
        let mut s = 0.0;
        for i in 0..x.len() {
            x[i] += alpha * p[i];
            let ri = r[i] - alpha * q[i];
            r[i] = ri;
            s += ri * ri;
        }
        s
    })
}

/// The update of single-reduction CG (Chronopoulos–Gear), one pass:
/// p ← u + β p, s ← w + β s, x ← x + α p, r ← r − α s; returns the new
/// rᵀr (the same sum as [`dot`]'s). With β = 0 (a restart) p and s are
/// written without being read: fresh vectors are zero pages, and a read
/// before the first write would make every page fault twice, the second
/// time with a TLB shootdown across the threads (≈ 10% of a 128³ solve).
#[allow(clippy::too_many_arguments)]
pub fn single_reduction_update(
    alpha: f64,
    beta: f64,
    u: &[f64],
    w: &[f64],
    p: &mut [f64],
    s: &mut [f64],
    x: &mut [f64],
    r: &mut [f64],
) -> f64 {
    let n = x.len();
    assert!(u.len() == n && w.len() == n && p.len() == n && s.len() == n && r.len() == n);
    let restart = beta == 0.0;
    let (p, s, x, r) = (
        DisjointSlice::new(p),
        DisjointSlice::new(s),
        DisjointSlice::new(x),
        DisjointSlice::new(r),
    );
    sum_blocks(num_blocks(n), 6 * n, |blk| {
        let range = block(blk, n);
        // SAFETY: blocks are disjoint.
        let (p, s, x, r) = unsafe {
            (
                p.range(range.clone()),
                s.range(range.clone()),
                x.range(range.clone()),
                r.range(range.clone()),
            )
        };
        let (u, w) = (&u[range.clone()], &w[range]);
        let mut rr = 0.0;
        for i in 0..x.len() {
            if restart {
                (p[i], s[i]) = (u[i], w[i]);
            } else {
                p[i] = u[i] + beta * p[i];
                s[i] = w[i] + beta * s[i];
            }
            x[i] += alpha * p[i];
            r[i] -= alpha * s[i];
            rr += r[i] * r[i];
        }
        rr
    })
}

/// p ← z + β p.
pub fn update_direction(z: &[f64], beta: f64, p: &mut [f64]) {
    let n = p.len();
    assert_eq!(z.len(), n);
    let p = DisjointSlice::new(p);
    for_blocks(num_blocks(n), 3 * n, |blk| {
        let range = block(blk, n);
        // SAFETY: blocks are disjoint.
        let p = unsafe { p.range(range.clone()) };
        for (pi, zi) in p.iter_mut().zip(&z[range]) {
            *pi = zi + beta * *pi;
        }
    });
}

/// z ← d ⊙ r (elementwise product); returns rᵀz.
pub fn scale_dot(d: &[f64], r: &[f64], z: &mut [f64]) -> f64 {
    let n = z.len();
    assert!(d.len() == n && r.len() == n);
    let z = DisjointSlice::new(z);
    sum_blocks(num_blocks(n), 3 * n, |blk| {
        let range = block(blk, n);
        // SAFETY: blocks are disjoint.
        let z = unsafe { z.range(range.clone()) };
        let (d, r) = (&d[range.clone()], &r[range]);
        let mut s = 0.0;
        for i in 0..z.len() {
            z[i] = d[i] * r[i];
            s += r[i] * z[i];
        }
        s
    })
}

/// Index and value of the first non-finite entry of `x`, if any.
pub fn first_non_finite(x: &[f64]) -> Option<(usize, f64)> {
    // Σ 0·xᵢ is NaN exactly when some xᵢ is NaN or ±∞: a parallel,
    // vectorised test of the common all-finite case before any search.
    let n = x.len();
    let probe = sum_blocks(num_blocks(n), n, |b| {
        x[block(b, n)].iter().map(|v| v * 0.0).sum()
    });
    if probe.is_nan() {
        x.iter().copied().enumerate().find(|(_, v)| !v.is_finite())
    } else {
        None
    }
}

/// y ← y + α x.
pub fn axpy(alpha: f64, x: &[f64], y: &mut [f64]) {
    let n = y.len();
    assert_eq!(x.len(), n);
    let y = DisjointSlice::new(y);
    for_blocks(num_blocks(n), 3 * n, |blk| {
        let range = block(blk, n);
        // SAFETY: blocks are disjoint.
        let y = unsafe { y.range(range.clone()) };
        for (yi, xi) in y.iter_mut().zip(&x[range]) {
            *yi += alpha * xi;
        }
    });
}

/// x ← α w ⊙ b (elementwise), in f64 or f32.
pub(crate) fn scaled_multiply<T: Real>(alpha: f64, w: &[T], b: &[T], x: &mut [T]) {
    let alpha = T::from_f64(alpha);
    let n = x.len();
    let out = DisjointSlice::new(x);
    for_blocks(num_blocks(n), 3 * n, |blk| {
        let range = block(blk, n);
        // SAFETY: blocks are disjoint.
        let x = unsafe { out.range(range.clone()) };
        for ((xi, &wi), &bi) in x.iter_mut().zip(&w[range.clone()]).zip(&b[range]) {
            *xi = alpha * wi * bi;
        }
    });
}

/// x ← α x, in f64 or f32; nothing to do when α = 1.
pub(crate) fn scale<T: Real>(alpha: f64, x: &mut [T]) {
    if alpha == 1.0 {
        return;
    }
    let alpha = T::from_f64(alpha);
    let n = x.len();
    let out = DisjointSlice::new(x);
    for_blocks(num_blocks(n), n, |blk| {
        // SAFETY: blocks are disjoint.
        let x = unsafe { out.range(block(blk, n)) };
        x.iter_mut().for_each(|xi| *xi = alpha * *xi);
    });
}

/// y ← x converted between f64 and f32 (rounded to nearest when narrowing).
pub(crate) fn convert<A: Real, B: Real>(x: &[A], y: &mut [B]) {
    let n = y.len();
    let out = DisjointSlice::new(y);
    for_blocks(num_blocks(n), 2 * n, |blk| {
        let range = block(blk, n);
        // SAFETY: blocks are disjoint.
        let y = unsafe { out.range(range.clone()) };
        for (yi, &xi) in y.iter_mut().zip(&x[range]) {
            *yi = B::from_f64(xi.to_f64());
        }
    });
}

/// z ← x widened to f64; returns rᵀz (one pass: a preconditioner's output
/// and its dot product).
pub(crate) fn widen_dot<T: Real>(x: &[T], r: &[f64], z: &mut [f64]) -> f64 {
    let n = z.len();
    let out = DisjointSlice::new(z);
    sum_blocks(num_blocks(n), 3 * n, |blk| {
        let range = block(blk, n);
        // SAFETY: blocks are disjoint.
        let z = unsafe { out.range(range.clone()) };
        widen_dot_serial(&x[range.clone()], &r[range], z)
    })
}

/// [`widen_dot`] on one thread, the sum in four interleaved partial sums
/// (entry i in sum i mod 4) so that it does not wait on one addition
/// chain.
pub(crate) fn widen_dot_serial<T: Real>(x: &[T], r: &[f64], z: &mut [f64]) -> f64 {
    assert!(x.len() == z.len() && r.len() == z.len());
    let mut sums = [0.0; 4];
    let whole = z.len() - z.len() % 4;
    let (z_head, z_tail) = z.split_at_mut(whole);
    for ((zc, xc), rc) in z_head
        .chunks_exact_mut(4)
        .zip(x.chunks_exact(4))
        .zip(r.chunks_exact(4))
    {
        for l in 0..4 {
            zc[l] = xc[l].to_f64();
            sums[l] += rc[l] * zc[l];
        }
    }
    for (l, ((zi, &xi), &ri)) in z_tail
        .iter_mut()
        .zip(&x[whole..])
        .zip(&r[whole..])
        .enumerate()
    {
        *zi = xi.to_f64();
        sums[l] += ri * *zi;
    }
    (sums[0] + sums[1]) + (sums[2] + sums[3])
}
