//! Runtime dispatch of hot loops to code compiled for the CPU's vector
//! extensions, so one portable x86-64 binary runs 256- or 512-bit vector
//! code where the CPU has it.
//!
//! The loops keep fixed, explicit accumulation lanes and the crate never
//! fuses a multiply-add implicitly, so every level computes the same IEEE
//! operations in the same order: results are bitwise identical whichever
//! path runs. Where a kernel fuses explicitly (`f32::mul_add`, the
//! network's convolutions) it does so on every level: the vector levels
//! have FMA instructions (the AVX2 level requires the FMA extension), the
//! x86-64 baseline calls the C library's `fmaf`, which rounds the same.

use once_cell::sync::Lazy;

static LEVEL: Lazy<Level> = Lazy::new(|| {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            return Level::Avx512;
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return Level::Avx2;
        }
    }
    Level::Baseline
});

/// The vector extension the hot loops use on this CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    /// The compilation target's own (SSE2 on x86-64).
    Baseline,
    /// AVX2 (256-bit), with FMA.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// AVX-512F (512-bit).
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

/// The widest extension the CPU has, detected once.
#[cfg(not(test))]
pub(crate) fn level() -> Level {
    *LEVEL
}

/// Unit tests may force a lower level (0 = none forced, 1 = baseline,
/// 2 = AVX2) to compare the paths.
#[cfg(test)]
pub(crate) static FORCED: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

#[cfg(test)]
pub(crate) fn level() -> Level {
    match (FORCED.load(std::sync::atomic::Ordering::SeqCst), *LEVEL) {
        (1, _) => Level::Baseline,
        #[cfg(target_arch = "x86_64")]
        (2, Level::Avx512) => Level::Avx2,
        (_, detected) => detected,
    }
}

/// Defines a function whose body runs compiled for [`level()`]: the body
/// becomes an `#[inline(always)]` function, force-inlined into one
/// `#[target_feature]` copy per level, and each call picks the copy.
macro_rules! vectorized_fn {
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block
    ) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f")]
            unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                body($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2")]
            unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                body($($arg),*)
            }
            match $crate::simd::level() {
                // SAFETY: `level()` reports only features the CPU has.
                #[cfg(target_arch = "x86_64")]
                $crate::simd::Level::Avx512 => unsafe { avx512($($arg),*) },
                // SAFETY: as above.
                #[cfg(target_arch = "x86_64")]
                $crate::simd::Level::Avx2 => unsafe { avx2($($arg),*) },
                $crate::simd::Level::Baseline => body($($arg),*),
            }
        }
    };
}
pub(crate) use vectorized_fn;
