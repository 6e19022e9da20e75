//! The per-cell codes of a grid operator
//! ([`GridPoisson::unknown_codes`](super::GridPoisson::unknown_codes)): a
//! fluid cell's unknown index, or one of two reserved values.

/// The code of a solid cell.
pub(crate) const SOLID: u32 = u32::MAX;
/// The code of an air cell; fluid cells have codes below it (their unknown
/// index).
pub(crate) const AIR: u32 = u32::MAX - 1;
