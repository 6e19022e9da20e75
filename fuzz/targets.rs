//! The bodies of the fuzz targets, shared by the libFuzzer binaries
//! (`fuzz/fuzz_targets/*.rs`) and by `tests/fuzz_corpus.rs`, which replays
//! the kept corpus in `cargo test`.
//!
//! Each body feeds bytes to the C ABI the way a hostile caller would, but
//! keeps the caller's side of the contract (every pointer valid for the
//! length it claims), and panics only on a library defect: a caught panic
//! (`ADJ_ERR_PANIC`), or `ADJ_OK` with a non-finite output.

// Each fuzz binary uses one of the targets.
#![allow(dead_code)]

use adjunct::ffi::*;
use std::ffi::{c_int, c_void, CString};
use std::ptr::{null, null_mut};

/// Reads little-endian fields off the front of the input; missing bytes
/// read as zero.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let k = N.min(self.0.len());
        out[..k].copy_from_slice(&self.0[..k]);
        self.0 = &self.0[k..];
        out
    }
    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }
    fn i16(&mut self) -> i16 {
        i16::from_le_bytes(self.take())
    }
    fn f64(&mut self) -> f64 {
        f64::from_le_bytes(self.take())
    }
    /// The next `len` bytes (zero-padded).
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        let k = len.min(self.0.len());
        out[..k].copy_from_slice(&self.0[..k]);
        self.0 = &self.0[k..];
        out
    }
}

/// A defect unless the status is a proper one.
fn no_panic(status: adj_status, what: &str) {
    assert_ne!(status, adj_status::ADJ_ERR_PANIC, "{what}: {}", message());
}

fn message() -> String {
    // SAFETY: the library returns a valid NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(adj_last_error_message()) }
        .to_string_lossy()
        .into_owned()
}

fn assert_finite(values: &[f64], what: &str) {
    assert!(
        values.iter().all(|v| v.is_finite()),
        "{what}: ADJ_OK with a non-finite output"
    );
}

/// d = r, a direction callback.
unsafe extern "C" fn copy(_: *mut c_void, r: *const f64, d: *mut f64, n: usize) -> c_int {
    // SAFETY: r and d hold n doubles.
    unsafe { std::ptr::copy_nonoverlapping(r, d, n) };
    0
}

/// Exercises a constructed operator of dimension `n`: products, CSR export,
/// every preconditioner, CG with `options`, and the conjugate-direction
/// method with `cdm_options`.
fn exercise(
    op: *mut adj_operator,
    options: *const adj_cg_options,
    cdm_options: *const adj_cdm_options,
) {
    let mut n = 0;
    // SAFETY: op is a live handle; every array below has the length claimed.
    unsafe {
        assert_eq!(adj_operator_dim(op, &mut n), adj_status::ADJ_OK);
        let x: Vec<f64> = (0..n).map(|i| 1.0 + (i % 7) as f64).collect();
        let mut y = vec![0.0; n];
        no_panic(
            adj_operator_apply(op, x.as_ptr(), y.as_mut_ptr(), n),
            "apply",
        );
        let mut nnz = 0;
        let s = adj_operator_csr_nnz(op, &mut nnz);
        no_panic(s, "csr_nnz");
        if s == adj_status::ADJ_OK {
            let (mut p, mut c, mut v) = (vec![0i64; n + 1], vec![0i64; nnz], vec![0.0; nnz]);
            let s = adj_operator_to_csr_i64(op, p.as_mut_ptr(), c.as_mut_ptr(), v.as_mut_ptr());
            no_panic(s, "to_csr_i64");
            if s == adj_status::ADJ_OK {
                assert_finite(&v, "to_csr_i64");
            }
        }
        for kind in [
            adj_precond_kind::ADJ_PRECOND_NONE,
            adj_precond_kind::ADJ_PRECOND_JACOBI,
            adj_precond_kind::ADJ_PRECOND_IC0,
            adj_precond_kind::ADJ_PRECOND_MULTIGRID,
        ] {
            let mut pc = null_mut();
            let s = adj_precond_new(op, kind as u32, &mut pc);
            no_panic(s, "precond_new");
            let mut x = vec![0.0; n];
            let mut report = std::mem::MaybeUninit::<adj_solve_report>::zeroed();
            adj_solve_report_init(report.as_mut_ptr(), std::mem::size_of::<adj_solve_report>());
            let s = adj_cg_solve(
                op,
                pc,
                y.as_ptr(),
                x.as_mut_ptr(),
                n,
                options,
                report.as_mut_ptr(),
            );
            no_panic(s, "cg_solve");
            if s == adj_status::ADJ_OK {
                assert_finite(&x, "cg_solve");
            }
            adj_precond_free(pc);
        }
        let mut x = vec![0.0; n];
        let s = adj_cdm_solve(
            op,
            null(),
            null(),
            Some(copy),
            null_mut(),
            y.as_ptr(),
            x.as_mut_ptr(),
            n,
            cdm_options,
            null_mut(),
            null_mut(),
        );
        no_panic(s, "cdm_solve");
        if s == adj_status::ADJ_OK {
            assert_finite(&x, "cdm_solve");
        }
    }
}

/// Bytes behind each options struct: the library reads a struct's
/// `struct_size` bytes (it rejects more than 4096 without reading them).
const OPTIONS_BUFFER: usize = 4096;

/// Options structs read from raw bytes (any `struct_size`, any values),
/// with the caller's pointers made valid and the iteration limits kept
/// short so that an input cannot make a run slow.
fn options_from(bytes: &mut Bytes<'_>, history: &mut [f64]) -> (Vec<u64>, Vec<u64>) {
    let aligned = |b: &mut Bytes<'_>| -> Vec<u64> {
        b.bytes(OPTIONS_BUFFER)
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect()
    };
    let mut cg = aligned(bytes);
    let mut cdm = aligned(bytes);
    // SAFETY: the aligned buffers hold either struct; its fields are numbers,
    // pointers and optional callbacks, valid for any bytes.
    unsafe {
        let o = cg.as_mut_ptr().cast::<adj_cg_options>();
        let mut v = o.read_unaligned();
        v.max_iterations = v.max_iterations.min(60);
        v.residual_history = if v.residual_history_capacity % 2 == 0 {
            null_mut()
        } else {
            history.as_mut_ptr()
        };
        v.residual_history_capacity = v.residual_history_capacity.min(history.len());
        v.comm = null();
        o.write_unaligned(v);
        let o = cdm.as_mut_ptr().cast::<adj_cdm_options>();
        let mut v = o.read_unaligned();
        v.max_iterations = v.max_iterations.min(60);
        v.allreduce = None;
        v.allreduce_ctx = null_mut();
        v.comm = null();
        o.write_unaligned(v);
    }
    // A struct_size of at most OPTIONS_BUFFER is readable in these buffers;
    // a larger one is what the library must reject without reading.
    (cg, cdm)
}

/// `adj_model_load` on arbitrary bytes, then a solve with a model that loaded.
pub fn model_load(data: &[u8]) {
    let path =
        std::env::temp_dir().join(format!("adjunct-fuzz-{}.safetensors", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let c_path = CString::new(path.to_str().unwrap_or_default()).unwrap_or_default();
    let mut model = null_mut();
    // SAFETY: a NUL-terminated path and a valid out pointer.
    let status = unsafe { adj_model_load(c_path.as_ptr(), &mut model) };
    no_panic(status, "model_load");
    if status != adj_status::ADJ_OK {
        return;
    }
    let mut dim = 0;
    // SAFETY: live handles; arrays of the lengths claimed.
    unsafe {
        assert_eq!(adj_model_dim(model, &mut dim), adj_status::ADJ_OK);
        let dims = if dim == 2 { [9, 7, 1] } else { [5, 4, 6] };
        let cells: Vec<u8> = (0..dims.iter().product::<usize>())
            .map(|c| {
                if c < dims[0] {
                    adj_cell::ADJ_CELL_AIR as u8
                } else {
                    0
                }
            })
            .collect();
        let mut op = null_mut();
        let s = adj_operator_new_grid_poisson(
            dims[0],
            dims[1],
            dims[2],
            cells.as_ptr(),
            null(),
            null(),
            &mut op,
        );
        assert_eq!(s, adj_status::ADJ_OK);
        let mut n = 0;
        adj_operator_dim(op, &mut n);
        let b = vec![1.0; n];
        let mut x = vec![0.0; n];
        let mut options = std::mem::MaybeUninit::<adj_cdm_options>::zeroed();
        adj_cdm_options_init(options.as_mut_ptr(), std::mem::size_of::<adj_cdm_options>());
        let mut options = options.assume_init();
        options.max_iterations = 30;
        let s = adj_cdm_solve(
            op,
            model,
            null(),
            None,
            null_mut(),
            b.as_ptr(),
            x.as_mut_ptr(),
            n,
            &options,
            null_mut(),
            null_mut(),
        );
        no_panic(s, "cdm_solve with the model");
        if s == adj_status::ADJ_OK {
            assert_finite(&x, "cdm_solve with the model");
        }
        adj_operator_free(op);
        adj_model_free(model);
    }
}

/// `adj_operator_new_csr_i32`/`_i64` on arbitrary sizes and arrays, then
/// everything that can be done with a matrix that was accepted.
pub fn csr(data: &[u8]) {
    let mut bytes = Bytes(data);
    let wide = bytes.u8() % 2 == 1;
    let n_rows = (bytes.u8() % 48) as usize;
    let n_cols = if bytes.u8() % 8 == 0 {
        (bytes.u8() % 48) as usize
    } else {
        n_rows
    };
    let row_ptr: Vec<i64> = (0..=n_rows).map(|_| i64::from(bytes.i16())).collect();
    // The library reads row_ptr[n_rows] column indices and values when it
    // is a valid count: give it that many.
    let nnz = row_ptr.last().map_or(0, |&p| p.max(0) as usize);
    let col_idx: Vec<i64> = (0..nnz).map(|_| i64::from(bytes.i16() % 64)).collect();
    let values: Vec<f64> = (0..nnz)
        .map(|_| match bytes.u8() {
            0 => f64::NAN,
            1 => f64::INFINITY,
            2 => 1e308,
            k => f64::from(k) - 128.0,
        })
        .collect();
    let mut history = vec![0.0; 8];
    let (cg, cdm) = options_from(&mut bytes, &mut history);
    let mut op = null_mut();
    // SAFETY: arrays of the lengths the library reads.
    let status = unsafe {
        if wide {
            adj_operator_new_csr_i64(
                n_rows,
                n_cols,
                row_ptr.as_ptr(),
                col_idx.as_ptr(),
                values.as_ptr(),
                &mut op,
            )
        } else {
            let p: Vec<i32> = row_ptr.iter().map(|&v| v as i32).collect();
            let c: Vec<i32> = col_idx.iter().map(|&v| v as i32).collect();
            adj_operator_new_csr_i32(
                n_rows,
                n_cols,
                p.as_ptr(),
                c.as_ptr(),
                values.as_ptr(),
                &mut op,
            )
        }
    };
    no_panic(status, "new_csr");
    if status == adj_status::ADJ_OK {
        // The aligned buffers hold any struct_size the library accepts.
        exercise(op, cg.as_ptr().cast(), cdm.as_ptr().cast());
        // SAFETY: a live handle.
        unsafe { adj_operator_free(op) };
    }
}

/// `adj_operator_new_grid_poisson` on arbitrary small grids, flags (any
/// byte), spacings and face coefficients, with options structs of any
/// size and content.
pub fn grid(data: &[u8]) {
    let mut bytes = Bytes(data);
    let nx = 1 + (bytes.u8() % 12) as usize;
    let ny = 1 + (bytes.u8() % 12) as usize;
    let nz = 1 + (bytes.u8() % 6) as usize;
    let flags = bytes.u8();
    let ncells = nx * ny * nz;
    let ndim = if nz > 1 { 3 } else { 2 };
    let cells: Vec<u8> = bytes
        .bytes(ncells)
        .iter()
        .map(|b| if flags & 1 == 0 { b % 3 } else { *b })
        .collect();
    let weight = |b: &mut Bytes<'_>| match b.u8() {
        0 => b.f64(),
        1 => 0.0,
        k => f64::from(k) / 16.0,
    };
    let spacing: Vec<f64> = (0..ndim).map(|_| weight(&mut bytes)).collect();
    let beta: Vec<f64> = (0..ndim * ncells).map(|_| weight(&mut bytes)).collect();
    let mut history = vec![0.0; 8];
    let (cg, cdm) = options_from(&mut bytes, &mut history);
    let mut op = null_mut();
    // SAFETY: arrays of the documented lengths.
    let status = unsafe {
        adj_operator_new_grid_poisson(
            nx,
            ny,
            nz,
            cells.as_ptr(),
            if flags & 2 != 0 {
                spacing.as_ptr()
            } else {
                null()
            },
            if flags & 4 != 0 {
                beta.as_ptr()
            } else {
                null()
            },
            &mut op,
        )
    };
    no_panic(status, "new_grid_poisson");
    if status == adj_status::ADJ_OK {
        // The aligned buffers hold any struct_size the library accepts.
        exercise(op, cg.as_ptr().cast(), cdm.as_ptr().cast());
        // SAFETY: a live handle.
        unsafe { adj_operator_free(op) };
    }
}
