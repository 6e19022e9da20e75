//! A branch-free exp that the compiler can vectorise, for the dense passes
//! over the cost matrix (libm's `exp` is a scalar call per entry).
//!
//! exp(x) = 2ᵏ · exp(r) with k = round(x / ln 2) and r = x − k ln 2
//! (Cody–Waite, |r| ≤ ln 2 / 2), exp(r) by its degree-13 Taylor polynomial
//! (truncation error < 1e-17 relative). Accurate to a few ulp over
//! [−708, 709]; below −708 the result is 0 (libm's is < 3.3e-308 there),
//! above 709 it is +∞ (libm's is > 8.2e307), and NaN stays NaN.

const LOG2_E: f64 = std::f64::consts::LOG2_E;
/// ln 2 split into a high part with trailing zero bits (k·LN2_HI is exact
/// for |k| < 2¹¹) and the remainder.
const LN2_HI: f64 = f64::from_bits(0x3FE6_2E42_FEE0_0000);
const LN2_LO: f64 = f64::from_bits(0x3DEA_39EF_3579_3C76);
/// 1.5·2⁵²: adding it rounds to an integer held in the low mantissa bits.
const ROUND: f64 = 6_755_399_441_055_744.0;
const MIN_ARG: f64 = -708.0;
const MAX_ARG: f64 = 709.0;

/// exp(x), see the module documentation.
#[inline(always)]
pub(crate) fn exp(x: f64) -> f64 {
    let clamped = x.clamp(MIN_ARG - 1.0, MAX_ARG + 1.0);
    let shifted = clamped * LOG2_E + ROUND;
    let k = shifted - ROUND;
    let r = (clamped - k * LN2_HI) - k * LN2_LO;
    // Horner form of Σ_{i ≤ 13} rⁱ / i!.
    let mut p = 1.0 / 6_227_020_800.0;
    p = p * r + 1.0 / 479_001_600.0;
    p = p * r + 1.0 / 39_916_800.0;
    p = p * r + 1.0 / 3_628_800.0;
    p = p * r + 1.0 / 362_880.0;
    p = p * r + 1.0 / 40_320.0;
    p = p * r + 1.0 / 5_040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    // 2ᵏ from the integer in the low bits of `shifted` (k + 1023 ∈ [0, 2047]
    // after the clamp, wrapping to the exponent field).
    let scale = f64::from_bits(shifted.to_bits().wrapping_add(1023) << 52);
    let value = p * scale;
    if x < MIN_ARG {
        0.0
    } else if x > MAX_ARG {
        f64::INFINITY
    } else if x.is_nan() {
        x
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::exp;

    #[test]
    fn matches_libm_to_a_few_ulp() {
        let mut worst = 0.0f64;
        let mut x = -708.0;
        while x < 709.0 {
            let (ours, libm) = (exp(x), x.exp());
            worst = worst.max(((ours - libm) / libm).abs());
            x += 0.013_7;
        }
        for i in 0..100_000 {
            let x = -1.0 + 2.0 * i as f64 / 100_000.0;
            worst = worst.max(((exp(x) - x.exp()) / x.exp()).abs());
        }
        assert!(worst < 4.0 * f64::EPSILON, "worst relative error {worst:e}");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-800.0), 0.0);
        assert_eq!(exp(f64::NEG_INFINITY), 0.0);
        assert_eq!(exp(709.5), f64::INFINITY);
        assert!(exp(f64::NAN).is_nan());
    }
}
