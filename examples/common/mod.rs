//! Helpers shared by the benchmark and training examples (each uses a
//! subset).
#![allow(dead_code)]

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
