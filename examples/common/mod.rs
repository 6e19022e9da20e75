//! Helpers shared by the benchmark and training examples (each uses a
//! subset).
#![allow(dead_code)]

/// SplitMix64, so the benchmark problems are reproducible without an RNG crate.
pub struct Rng(pub u64);

impl Rng {
    /// A uniform number in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Writes `v` as little-endian f64 (the peer scripts read this layout).
pub fn write_f64(path: &std::path::Path, v: &[f64]) {
    use std::io::Write;
    let file = std::fs::File::create(path).expect("create data file");
    let mut file = std::io::BufWriter::new(file);
    for x in v {
        file.write_all(&x.to_le_bytes()).expect("write data file");
    }
}

/// The value after `name` on the command line, if any.
pub fn flag(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}
