//! The floating-point types of fields and kernels.

use std::fmt::Debug;
use std::ops::{Add, AddAssign, Mul, Sub, SubAssign};

/// The value type of a per-cell field: f64, or f32 as simulators store
/// velocity and pressure (rounded to nearest when written).
pub trait FieldValue: Copy + Send + Sync {
    /// The value as f64 (exact).
    fn to_f64(self) -> f64;
    /// The nearest value to `v`.
    fn from_f64(v: f64) -> Self;
}

impl FieldValue for f64 {
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(v: f64) -> Self {
        v
    }
}

impl FieldValue for f32 {
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

/// The arithmetic of the kernels that run in f64 or f32 (the grid stencil,
/// the multigrid transfers and smoothers): f64 everywhere by default, f32
/// inside a single-precision V-cycle.
pub(crate) trait Real:
    FieldValue
    + Default
    + Debug
    + Send
    + Sync
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + AddAssign
    + SubAssign
    + 'static
{
}

impl Real for f64 {}
impl Real for f32 {}
