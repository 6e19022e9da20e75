//! Code shared by the benchmarks and the `bench_*` examples.
pub mod faer_cg;
