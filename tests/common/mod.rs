//! Helpers shared by the integration tests: a seeded random generator,
//! random SPD matrices, small grid scenes and a faer direct solve as the
//! independent reference.
#![allow(dead_code)]

#[path = "../../src/random.rs"]
#[allow(dead_code)]
mod random;

use adjunct::{Cell, CsrMatrix};
use faer::linalg::solvers::Solve;
use faer::Side;
use random::SplitMix;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The library's seeded generator (SplitMix64) with the draws the tests use.
pub struct Rng(SplitMix);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(SplitMix(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0.uniform()
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    pub fn vector(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.range(-1.0, 1.0)).collect()
    }
}

/// A random sparse symmetric positive definite n×n matrix with about
/// `per_row` off-diagonal entries per row: random symmetric off-diagonals
/// and a diagonal slightly above the row's absolute sum times `dominance`
/// (use dominance < 1 for a matrix that is still SPD but not diagonally
/// dominant: the off-diagonals are then drawn nonpositive, an M-matrix).
pub fn random_spd(n: usize, per_row: usize, seed: u64) -> CsrMatrix {
    let mut rng = Rng::new(seed);
    let mut rows: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
    for i in 0..n {
        for _ in 0..per_row / 2 {
            let j = (rng.next_u64() % n as u64) as usize;
            if j != i && !rows[i].iter().any(|e| e.0 == j) {
                let v = rng.range(-1.0, 1.0);
                rows[i].push((j, v));
                rows[j].push((i, v));
            }
        }
    }
    for (i, row) in rows.iter_mut().enumerate() {
        let sum: f64 = row.iter().map(|e| e.1.abs()).sum();
        row.push((i, sum + rng.range(0.01, 1.0)));
        row.sort_by_key(|e| e.0);
    }
    csr_from_rows(&rows)
}

pub fn csr_from_rows(rows: &[Vec<(usize, f64)>]) -> CsrMatrix {
    let mut row_ptr = vec![0usize];
    let (mut cols, mut vals) = (Vec::new(), Vec::new());
    for row in rows {
        for &(j, v) in row {
            cols.push(j);
            vals.push(v);
        }
        row_ptr.push(cols.len());
    }
    CsrMatrix::from_parts(rows.len(), rows.len(), &row_ptr, &cols, &vals).expect("valid CSR")
}

/// Solves A x = b with faer's sparse Cholesky (the independent reference).
pub fn direct_solve(a: &CsrMatrix, b: &[f64]) -> Vec<f64> {
    let llt = a.as_faer().sp_cholesky(Side::Lower).expect("SPD matrix");
    let rhs = faer::ColRef::from_slice(b);
    let x = llt.solve(rhs);
    x.iter().copied().collect()
}

/// ‖x − y‖₂ / ‖y‖₂.
pub fn rel_diff(x: &[f64], y: &[f64]) -> f64 {
    let num: f64 = x.iter().zip(y).map(|(a, b)| (a - b).powi(2)).sum();
    let den: f64 = y.iter().map(|b| b * b).sum();
    (num / den).sqrt()
}

/// ‖b − A x‖₂ computed entry by entry from the CSR arrays.
pub fn residual_norm(a: &CsrMatrix, x: &[f64], b: &[f64]) -> f64 {
    let (ptr, cols, vals) = (a.row_ptr(), a.col_idx(), a.values());
    (0..b.len())
        .map(|i| {
            let ax: f64 = (ptr[i] as usize..ptr[i + 1] as usize)
                .map(|k| vals[k] * x[cols[k] as usize])
                .sum();
            (b[i] - ax).powi(2)
        })
        .sum::<f64>()
        .sqrt()
}

/// A grid with random solid cells (probability `solid`), air cells on the
/// top layer, and fluid elsewhere.
pub fn random_cells(dims: [usize; 3], solid: f64, seed: u64) -> Vec<Cell> {
    let mut rng = Rng::new(seed);
    let [nx, ny, nz] = dims;
    let up = if nz > 1 { 2 } else { 1 };
    (0..nx * ny * nz)
        .map(|c| {
            let ijk = [c % nx, (c / nx) % ny, c / (nx * ny)];
            if ijk[up] + 1 == dims[up] {
                Cell::Air
            } else if rng.uniform() < solid {
                Cell::Solid
            } else {
                Cell::Fluid
            }
        })
        .collect()
}

/// The repository root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Whether the outside tool a test needs is present; `probe` runs it.
///
/// When it is missing the test must return early, and this says so where
/// a newcomer sees it: the line goes straight to the process's stderr (the
/// harness captures `eprintln!` of passing tests, so a skip would look
/// passed), naming the test binary and `install` (how to get the tool).
/// With `CI` set, a missing tool fails the test instead: `.ci/run`
/// installs every such tool, so CI never skips.
#[track_caller]
pub fn require(tool: &str, probe: &mut Command, install: &str) -> bool {
    if probe.output().is_ok_and(|o| o.status.success()) {
        return true;
    }
    let message = format!("`{tool}` is not available ({install})");
    if std::env::var_os("CI").is_some() {
        panic!("CI is set but {message}");
    }
    let test = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let test = test.split('-').next().unwrap_or("").to_string();
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr().lock(),
        "\nSKIPPED (counted as passed by the harness): tests/{test}.rs at {}: {message}\n",
        std::panic::Location::caller()
    );
    false
}

/// [`require`] for a tool that answers `--version`.
#[track_caller]
pub fn require_tool(tool: &str, install: &str) -> bool {
    require(tool, Command::new(tool).arg("--version"), install)
}

/// Runs `cmd`, asserts success, and returns its stdout and stderr.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// The JSON fixture tests/fixtures/`name` (written by the script beside it).
pub fn fixture(name: &str) -> serde_json::Value {
    let path = root().join("tests/fixtures").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("fixture {} ({e}); run the script beside it", path.display()));
    serde_json::from_str(&text).expect("valid JSON")
}

/// A JSON array of numbers.
pub fn json_numbers(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

/// System libraries the Rust static library needs on Linux
/// (`cargo rustc --release --lib --crate-type staticlib -- --print native-static-libs`).
pub const NATIVE_LIBS: &[&str] = &[
    "-lgcc_s",
    "-lutil",
    "-lrt",
    "-lpthread",
    "-lm",
    "-ldl",
    "-lc",
];

/// The static library built for this test run: cargo builds the library's
/// crate types into the profile's `deps/` directory before running tests.
pub fn static_library() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps directory");
    let candidates = [
        deps.join("libadjunct.a"),
        deps.parent()
            .expect("profile directory")
            .join("libadjunct.a"),
    ];
    candidates
        .iter()
        .filter(|p| p.exists())
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
        .cloned()
        .unwrap_or_else(|| panic!("libadjunct.a not found in {candidates:?}"))
}

/// A scratch directory for built programs, under cargo's test temp dir.
pub fn tempdir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The library's message for the last failure on this thread.
pub fn last_error() -> String {
    // SAFETY: the library returns a valid NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(adjunct::ffi::adj_last_error_message()) }
        .to_string_lossy()
        .into_owned()
}

/// Asserts `status` and that the message mentions every fragment.
#[track_caller]
pub fn expect(
    status: adjunct::ffi::adj_status,
    expected: adjunct::ffi::adj_status,
    fragments: &[&str],
) {
    let message = last_error();
    assert_eq!(status, expected, "message: {message}");
    for f in fragments {
        assert!(message.contains(f), "message {message:?} lacks {f:?}");
    }
}

/// A C ABI struct initialised by its `adj_<struct>_init` function with
/// this header's `sizeof`.
pub fn init<T>(f: unsafe extern "C" fn(*mut T, usize) -> adjunct::ffi::adj_status) -> T {
    let mut value = std::mem::MaybeUninit::<T>::zeroed();
    // SAFETY: the struct has size_of::<T>() writable bytes.
    let status = unsafe { f(value.as_mut_ptr(), std::mem::size_of::<T>()) };
    assert_eq!(status, adjunct::ffi::adj_status::ADJ_OK, "{}", last_error());
    // SAFETY: initialised by `f`.
    unsafe { value.assume_init() }
}

/// [`init`], wrapped for code that passes `as_mut_ptr()` and reads the
/// struct back with `assume_init()`.
pub fn init_uninit<T>(
    f: unsafe extern "C" fn(*mut T, usize) -> adjunct::ffi::adj_status,
) -> std::mem::MaybeUninit<T> {
    std::mem::MaybeUninit::new(init(f))
}

/// ‖x‖₂.
pub fn norm(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// The reference solve of a grid with isolated fluid cells (zero rows of
/// `a`): the unknowns that keep a coupling, and the direct solution of the
/// system restricted to them with b's entries there.
pub fn direct_solve_without_zero_rows(a: &CsrMatrix, b: &[f64]) -> (Vec<usize>, Vec<f64>) {
    let (ptr, cols, vals) = (a.row_ptr(), a.col_idx(), a.values());
    let keep: Vec<usize> = (0..ptr.len() - 1)
        .filter(|&u| ptr[u + 1] - ptr[u] > 1)
        .collect();
    let index = |u: usize| keep.binary_search(&u).ok();
    let rows: Vec<Vec<(usize, f64)>> = keep
        .iter()
        .map(|&u| {
            (ptr[u] as usize..ptr[u + 1] as usize)
                .filter_map(|k| index(cols[k] as usize).map(|j| (j, vals[k])))
                .collect()
        })
        .collect();
    let rhs: Vec<f64> = keep.iter().map(|&u| b[u]).collect();
    let x = direct_solve(&csr_from_rows(&rows), &rhs);
    (keep, x)
}

/// Asserts ⟨Mx, y⟩ = ⟨x, My⟩ to `tolerance` (relative to ‖Mx‖‖y‖, as the
/// product may cancel) and ⟨Mx, x⟩ > 0 on four pairs of random vectors.
#[track_caller]
pub fn assert_symmetric_positive(m: &dyn adjunct::Preconditioner, tolerance: f64, label: &str) {
    let dot = |x: &[f64], y: &[f64]| -> f64 { x.iter().zip(y).map(|(a, b)| a * b).sum() };
    let n = m.dim();
    let mut rng = Rng::new(17);
    for _ in 0..4 {
        let (x, y) = (rng.vector(n), rng.vector(n));
        let (mut mx, mut my) = (vec![0.0; n], vec![0.0; n]);
        let xmx = m.apply_dot(&x, &mut mx).unwrap();
        m.apply_dot(&y, &mut my).unwrap();
        let (a, b) = (dot(&mx, &y), dot(&x, &my));
        let scale = dot(&mx, &mx).sqrt() * dot(&y, &y).sqrt();
        assert!(
            (a - b).abs() <= tolerance * scale,
            "{label}: <Mx,y> = {a:e}, <x,My> = {b:e}"
        );
        assert!(xmx > 0.0, "{label}: <Mx,x> = {xmx:e}");
    }
}

/// An nx×ny grid operator through the C ABI: fluid with an air top row and
/// a solid wall halfway up the middle column.
pub fn c_grid_operator(nx: usize, ny: usize) -> *mut adjunct::ffi::adj_operator {
    use adjunct::ffi::{adj_cell, adj_operator_new_grid_poisson, adj_status};
    let cells: Vec<u8> = (0..nx * ny)
        .map(|c| {
            if c / nx == ny - 1 {
                adj_cell::ADJ_CELL_AIR as u8
            } else if c % nx == nx / 2 && c / nx < ny / 2 {
                adj_cell::ADJ_CELL_SOLID as u8
            } else {
                adj_cell::ADJ_CELL_FLUID as u8
            }
        })
        .collect();
    let mut op = std::ptr::null_mut();
    // SAFETY: nx·ny flags; NULL spacing and face coefficients (all 1).
    let s = unsafe {
        adj_operator_new_grid_poisson(
            nx,
            ny,
            1,
            cells.as_ptr(),
            std::ptr::null(),
            std::ptr::null(),
            &mut op,
        )
    };
    assert_eq!(s, adj_status::ADJ_OK, "{}", last_error());
    op
}
