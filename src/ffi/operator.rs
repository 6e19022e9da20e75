//! `adj_operator`: CSR matrices, grid Poisson stencils and callback operators.

use super::args::{emit_handle, free_handle, handle, out_ptr, slice, slice_mut};
use super::callback::{adj_apply_fn, callback_map, VectorMap};
use super::status::{adj_status, boundary};
use super::versioned::{self, versioned, Versioned};
use crate::error::{Error, Result};
use crate::operator::{
    Cell, CsrIndex, CsrMatrix, FieldValue, FnOperator, GridPoisson, LinearOperator,
};
use std::ffi::c_void;

/// The flag of a grid cell in `adj_operator_new_grid_poisson`'s `cells`
/// (stored as `uint8_t`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum adj_cell {
    /// A fluid cell (an unknown).
    ADJ_CELL_FLUID = 0,
    /// A solid cell (a wall: Neumann, no coupling).
    ADJ_CELL_SOLID = 1,
    /// An air cell (free surface: Dirichlet p = 0).
    ADJ_CELL_AIR = 2,
}

const _: () = assert!(adj_cell::ADJ_CELL_FLUID as u8 == Cell::Fluid as u8);
const _: () = assert!(adj_cell::ADJ_CELL_SOLID as u8 == Cell::Solid as u8);
const _: () = assert!(adj_cell::ADJ_CELL_AIR as u8 == Cell::Air as u8);

type CallbackOperator = FnOperator<VectorMap>;

/// A square linear operator (opaque). Immutable after construction: one
/// handle may be used by several threads at once, except a callback
/// operator, which is as thread-safe as its callback.
#[allow(non_camel_case_types)]
pub struct adj_operator {
    pub(crate) kind: OperatorKind,
}

pub(crate) enum OperatorKind {
    Csr(CsrMatrix),
    Grid(GridPoisson),
    Callback(CallbackOperator),
}

impl adj_operator {
    pub(crate) fn linear_operator(&self) -> &dyn LinearOperator {
        match &self.kind {
            OperatorKind::Csr(a) => a,
            OperatorKind::Grid(a) => a,
            OperatorKind::Callback(a) => a,
        }
    }

    pub(crate) fn grid(&self) -> Result<&GridPoisson> {
        match &self.kind {
            OperatorKind::Grid(g) => Ok(g),
            _ => Err(Error::invalid(
                "op",
                "this function needs a grid Poisson operator",
            )),
        }
    }

    /// The operator as a CSR matrix: itself, or the grid stencil's export.
    pub(crate) fn to_csr(&self) -> Result<std::borrow::Cow<'_, CsrMatrix>> {
        match &self.kind {
            OperatorKind::Csr(a) => Ok(std::borrow::Cow::Borrowed(a)),
            OperatorKind::Grid(g) => Ok(std::borrow::Cow::Owned(g.to_csr()?)),
            OperatorKind::Callback(_) => Err(Error::invalid(
                "op",
                "a callback operator has no matrix entries (IC(0) and CSR export need a CSR or grid operator)",
            )),
        }
    }
}

/// # Safety
/// Pointers as documented on the exported functions.
unsafe fn new_csr<I: CsrIndex>(
    n_rows: usize,
    n_cols: usize,
    row_ptr: *const I,
    col_idx: *const I,
    values: *const f64,
    out: *mut *mut adj_operator,
) -> adj_status {
    boundary(|| {
        out_ptr(out, "out")?;
        // The sizes are checked before any array is read.
        CsrMatrix::check_shape(n_rows, n_cols)?;
        // SAFETY: the caller passes n_rows + 1 row pointers.
        let ptr = unsafe { slice(row_ptr, n_rows + 1, "row_ptr") }?;
        // A negative row_ptr[n_rows] is reported by `from_parts`.
        let nnz = ptr.last().and_then(|p| p.to_index()).unwrap_or(0);
        if nnz > u32::MAX as usize {
            return Err(Error::invalid(
                "row_ptr",
                format!("row_ptr[n_rows] = {nnz} exceeds the supported 2^32-1 nonzeros"),
            ));
        }
        // SAFETY: the caller passes row_ptr[n_rows] column indices and values.
        let (cols, vals) = unsafe {
            (
                slice(col_idx, nnz, "col_idx")?,
                slice(values, nnz, "values")?,
            )
        };
        let matrix = CsrMatrix::from_parts(n_rows, n_cols, ptr, cols, vals)?;
        // SAFETY: `out` checked above.
        unsafe {
            emit_handle(
                out,
                adj_operator {
                    kind: OperatorKind::Csr(matrix),
                },
            )
        };
        Ok(())
    })
}

/// Creates a CSR matrix operator from 32-bit index arrays, copying them.
///
/// `row_ptr` has `n_rows + 1` entries starting at 0 and non-decreasing;
/// row i holds `values[row_ptr[i] .. row_ptr[i+1]]` at columns
/// `col_idx[...]`, strictly increasing within the row. The matrix must be
/// square with finite values. CG additionally requires it symmetric
/// positive definite (symmetry is checked when solving).
#[no_mangle]
pub unsafe extern "C" fn adj_operator_new_csr_i32(
    n_rows: usize,
    n_cols: usize,
    row_ptr: *const i32,
    col_idx: *const i32,
    values: *const f64,
    out: *mut *mut adj_operator,
) -> adj_status {
    // SAFETY: forwarded contract.
    unsafe { new_csr(n_rows, n_cols, row_ptr, col_idx, values, out) }
}

/// As `adj_operator_new_csr_i32`, with 64-bit index arrays.
#[no_mangle]
pub unsafe extern "C" fn adj_operator_new_csr_i64(
    n_rows: usize,
    n_cols: usize,
    row_ptr: *const i64,
    col_idx: *const i64,
    values: *const f64,
    out: *mut *mut adj_operator,
) -> adj_status {
    // SAFETY: forwarded contract.
    unsafe { new_csr(n_rows, n_cols, row_ptr, col_idx, values, out) }
}

/// Creates the pressure-projection Poisson operator on an `nx × ny × nz`
/// grid (`nz = 1` for 2D, 5-point stencil; else 7-point).
///
/// - `cells`: `nx·ny·nz` flags `ADJ_CELL_FLUID / SOLID / AIR`, cell
///   `c = i + nx·(j + ny·k)` (x fastest). Each fluid cell is one unknown,
///   numbered in cell order; cells outside the grid act as solid walls.
/// - `spacing`: NULL (all 1) or `ndim` grid spacings h (ndim = 3 when
///   nz > 1, else 2).
/// - `face_coefficients`: NULL (all 1) or `ndim·nx·ny·nz` values β ≥ 0;
///   entry `a·ncells + c` weights the face between cell c and its +a
///   neighbour (e.g. 1/ρ on the face).
///
/// (A p)_i = Σ_faces β/h_a² (p_i − p_nb), with p_nb = 0 for air and solid
/// faces dropped: A = −∇·(β∇), SPD when every fluid region touches air,
/// else singular with the constants on each enclosed region as null space,
/// which every solver removes (see `adj_cg_solve`). No fluid cell at all is
/// valid (no unknowns). `adj_operator_new_grid` also takes the caller's
/// own cell codes, a scalar factor and ghost-fluid free surfaces.
#[no_mangle]
pub unsafe extern "C" fn adj_operator_new_grid_poisson(
    nx: usize,
    ny: usize,
    nz: usize,
    cells: *const u8,
    spacing: *const f64,
    face_coefficients: *const f64,
    out: *mut *mut adj_operator,
) -> adj_status {
    let options = adj_grid_options {
        spacing,
        face_coefficients,
        ..<adj_grid_options as Versioned>::defaults()
    };
    // SAFETY: forwarded contract.
    unsafe { adj_operator_new_grid(nx, ny, nz, cells, &options, out) }
}

/// Options of `adj_operator_new_grid`. Initialise with
/// `adj_grid_options_init(&options, sizeof options)`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct adj_grid_options {
    /// `sizeof(adj_grid_options)` as the caller's header declares it.
    pub struct_size: usize,
    /// NULL (all 1, the default) or `ndim` grid spacings h, in the units of
    /// length of the simulation.
    pub spacing: *const f64,
    /// NULL (all 1, the default) or `ndim·nx·ny·nz` face coefficients
    /// β ≥ 0, as for `adj_operator_new_grid_poisson`.
    pub face_coefficients: *const f64,
    /// A scalar factor s > 0 on the whole operator, A = s·(−∇·β∇): e.g.
    /// s = dt/ρ, so that b is the divergence field itself and `atol` is in
    /// its units. Default 1.
    pub scale: f64,
    /// NULL (default) or a level set φ of the liquid per cell (< 0 in the
    /// liquid, ≥ 0 in the air, any unit of length): ghost-fluid free
    /// surfaces. A face between a fluid cell i and an air cell a then
    /// carries the Dirichlet condition p = 0 at the fraction
    /// θ = φ_i/(φ_i − φ_a) of the way from i to a, i.e. the weight
    /// β/(θ h²) instead of β/h² (θ = 1 where φ does not change sign).
    /// Nothing else is stored per face.
    pub air_level_set: *const f64,
    /// The smallest θ (in (0, 1]), against a singular weight when the
    /// surface passes through a cell centre. Default 0.01.
    pub min_air_fraction: f64,
    /// The code of a fluid cell in `cells`. Default `ADJ_CELL_FLUID` (0).
    pub fluid_code: u8,
    /// The code of a solid cell. Default `ADJ_CELL_SOLID` (1).
    pub solid_code: u8,
    /// The code of an air cell. Default `ADJ_CELL_AIR` (2). The three codes
    /// must differ; a cell with another value is an error naming `cells`.
    pub air_code: u8,
}

versioned!(
    adj_grid_options,
    adj_grid_options {
        struct_size: std::mem::size_of::<adj_grid_options>(),
        spacing: std::ptr::null(),
        face_coefficients: std::ptr::null(),
        scale: 1.0,
        air_level_set: std::ptr::null(),
        min_air_fraction: 0.01,
        fluid_code: adj_cell::ADJ_CELL_FLUID as u8,
        solid_code: adj_cell::ADJ_CELL_SOLID as u8,
        air_code: adj_cell::ADJ_CELL_AIR as u8,
    }
);

/// Initialises `*options` (`struct_size` = `sizeof *options` in the
/// caller's header) with the defaults given on each field.
#[no_mangle]
pub unsafe extern "C" fn adj_grid_options_init(
    options: *mut adj_grid_options,
    struct_size: usize,
) -> adj_status {
    // SAFETY: `options` holds `struct_size` writable bytes by contract.
    boundary(|| unsafe { versioned::init(options, struct_size, "options") })
}

/// The cells and options of a grid, or of a rank's box of one, as a C
/// caller passed them: decoded and checked.
pub(crate) struct GridArgs<'a> {
    pub(crate) cells: Vec<Cell>,
    pub(crate) spacing: [f64; 3],
    pub(crate) scale: f64,
    pub(crate) face_coefficients: Option<&'a [f64]>,
    pub(crate) air_level_set: Option<(&'a [f64], f64)>,
}

/// Decodes `num_cells` cell flags and `options` (NULL = defaults) of a
/// grid with `ndim` axes.
///
/// # Safety
/// Pointers as documented on `adj_operator_new_grid`, for `num_cells` cells.
pub(crate) unsafe fn grid_args<'a>(
    num_cells: usize,
    ndim: usize,
    cells: *const u8,
    options: *const adj_grid_options,
) -> Result<GridArgs<'a>> {
    // SAFETY: NULL (defaults) or a valid options struct.
    let o = unsafe { versioned::read(options, "options") }?;
    let codes = [o.fluid_code, o.solid_code, o.air_code];
    if codes[0] == codes[1] || codes[0] == codes[2] || codes[1] == codes[2] {
        return Err(Error::invalid(
            "options",
            format!("fluid_code, solid_code and air_code must differ, found {codes:?}"),
        ));
    }
    // SAFETY: the caller passes num_cells flags.
    let flags = unsafe { slice(cells, num_cells, "cells") }?;
    let mut decoded = crate::alloc::with_capacity(num_cells, "cells")?;
    for (c, &f) in flags.iter().enumerate() {
        decoded.push(match f {
            f if f == o.fluid_code => Cell::Fluid,
            f if f == o.solid_code => Cell::Solid,
            f if f == o.air_code => Cell::Air,
            _ => {
                return Err(Error::invalid(
                    "cells",
                    format!(
                        "cells[{c}] = {f} is none of the codes fluid = {}, solid = {}, air = {}",
                        o.fluid_code, o.solid_code, o.air_code
                    ),
                ))
            }
        });
    }
    let mut spacing = [1.0; 3];
    if !o.spacing.is_null() {
        // SAFETY: non-NULL; the caller passes ndim spacings.
        let h = unsafe { slice(o.spacing, ndim, "spacing") }?;
        spacing[..ndim].copy_from_slice(h);
    }
    let face_coefficients = if o.face_coefficients.is_null() {
        None
    } else {
        let per_face = num_cells
            .checked_mul(ndim)
            .ok_or_else(|| Error::invalid("nz", format!("ndim·{num_cells} cells overflows")))?;
        // SAFETY: non-NULL; the caller passes ndim·ncells coefficients.
        Some(unsafe { slice(o.face_coefficients, per_face, "face_coefficients") }?)
    };
    let air_level_set = if o.air_level_set.is_null() {
        None
    } else {
        // SAFETY: non-NULL; the caller passes ncells values.
        Some((
            unsafe { slice(o.air_level_set, num_cells, "air_level_set") }?,
            o.min_air_fraction,
        ))
    };
    Ok(GridArgs {
        cells: decoded,
        spacing,
        scale: o.scale,
        face_coefficients,
        air_level_set,
    })
}

/// The grid operator described by the arguments of `adj_operator_new_grid`.
///
/// # Safety
/// Pointers as documented on `adj_operator_new_grid`.
pub(crate) unsafe fn grid_from_c(
    nx: usize,
    ny: usize,
    nz: usize,
    cells: *const u8,
    options: *const adj_grid_options,
) -> Result<GridPoisson> {
    let num_cells = nx
        .checked_mul(ny)
        .and_then(|v| v.checked_mul(nz))
        .ok_or_else(|| Error::invalid("nz", format!("nx·ny·nz overflows for {nx}×{ny}×{nz}")))?;
    let ndim = if nz > 1 { 3 } else { 2 };
    // SAFETY: forwarded contract.
    let args = unsafe { grid_args(num_cells, ndim, cells, options) }?;
    let mut builder = GridPoisson::builder([nx, ny, nz], &args.cells)
        .scale(args.scale)
        .spacing(args.spacing);
    if let Some(beta) = args.face_coefficients {
        builder = builder.face_coefficients(beta);
    }
    if let Some((phi, min_fraction)) = args.air_level_set {
        builder = builder.air_level_set(phi, min_fraction);
    }
    builder.build()
}

/// Creates the grid Poisson operator of `adj_operator_new_grid_poisson`
/// with `options` (NULL = defaults): the caller's cell codes (a simulator
/// using air = 0, fluid = 1, solid = 2 passes its own flags unchanged), a
/// scalar factor, and ghost-fluid free surfaces from a level set.
#[no_mangle]
pub unsafe extern "C" fn adj_operator_new_grid(
    nx: usize,
    ny: usize,
    nz: usize,
    cells: *const u8,
    options: *const adj_grid_options,
    out: *mut *mut adj_operator,
) -> adj_status {
    boundary(|| {
        out_ptr(out, "out")?;
        // SAFETY: forwarded contract.
        let grid = unsafe { grid_from_c(nx, ny, nz, cells, options) }?;
        // SAFETY: `out` checked above.
        unsafe {
            emit_handle(
                out,
                adj_operator {
                    kind: OperatorKind::Grid(grid),
                },
            )
        };
        Ok(())
    })
}

/// Creates a matrix-free operator of dimension `n` whose product y = A x is
/// computed by `apply(ctx, x, y, n)`. `ctx` is borrowed: it must stay valid
/// while the operator is used. For CG, A must be symmetric positive definite.
#[no_mangle]
pub unsafe extern "C" fn adj_operator_new_callback(
    n: usize,
    apply: adj_apply_fn,
    ctx: *mut c_void,
    out: *mut *mut adj_operator,
) -> adj_status {
    boundary(|| {
        out_ptr(out, "out")?;
        let f = callback_map(n, apply, ctx, "operator apply")?;
        // SAFETY: `out` checked above.
        unsafe {
            emit_handle(
                out,
                adj_operator {
                    kind: OperatorKind::Callback(FnOperator::new(n, f)),
                },
            )
        };
        Ok(())
    })
}

/// Releases an operator. NULL is accepted.
#[no_mangle]
pub unsafe extern "C" fn adj_operator_free(op: *mut adj_operator) {
    // SAFETY: the caller passes NULL or a live handle it no longer uses.
    super::status::boundary_or((), || unsafe { free_handle(op) })
}

/// Writes the dimension n of the operator (the number of unknowns; for a
/// grid, the number of fluid cells) to `*n`.
#[no_mangle]
pub unsafe extern "C" fn adj_operator_dim(op: *const adj_operator, n: *mut usize) -> adj_status {
    boundary(|| {
        // SAFETY: NULL or a live handle.
        let op = unsafe { handle(op, "op") }?;
        out_ptr(n, "n")?;
        // SAFETY: checked non-NULL.
        unsafe { *n = op.linear_operator().dim() };
        Ok(())
    })
}

/// Computes y = A x; `x` and `y` hold `n` doubles (n = the operator's dimension).
#[no_mangle]
pub unsafe extern "C" fn adj_operator_apply(
    op: *const adj_operator,
    x: *const f64,
    y: *mut f64,
    n: usize,
) -> adj_status {
    boundary(|| {
        // SAFETY: NULL or a live handle.
        let op = unsafe { handle(op, "op") }?.linear_operator();
        Error::check_len("n", op.dim(), n)?;
        // SAFETY: the caller passes n doubles in each; they must not overlap.
        let (x, y) = unsafe { (slice(x, n, "x")?, slice_mut(y, n, "y")?) };
        op.apply(x, y)
    })
}

/// Writes the number of stored entries of the operator's CSR form to
/// `*nnz` (CSR and grid operators only).
#[no_mangle]
pub unsafe extern "C" fn adj_operator_csr_nnz(
    op: *const adj_operator,
    nnz: *mut usize,
) -> adj_status {
    boundary(|| {
        // SAFETY: NULL or a live handle.
        let op = unsafe { handle(op, "op") }?;
        out_ptr(nnz, "nnz")?;
        let count = op.to_csr()?.nnz();
        // SAFETY: checked non-NULL.
        unsafe { *nnz = count };
        Ok(())
    })
}

/// Exports the operator as a CSR matrix with 64-bit indices (CSR and grid
/// operators) into caller arrays of the given lengths: `row_ptr` receives
/// n+1 entries, `col_idx` and `values` nnz entries (see
/// `adj_operator_dim` and `adj_operator_csr_nnz`), columns sorted in each
/// row. A length that differs is `ADJ_ERR_DIMENSION_MISMATCH` naming the
/// array, and nothing is written. Since 0.3.0.
#[no_mangle]
pub unsafe extern "C" fn adj_operator_write_csr_i64(
    op: *const adj_operator,
    row_ptr: *mut i64,
    row_ptr_len: usize,
    col_idx: *mut i64,
    col_idx_len: usize,
    values: *mut f64,
    values_len: usize,
) -> adj_status {
    let lengths = Some([row_ptr_len, col_idx_len, values_len]);
    // SAFETY: forwarded contract.
    boundary(|| unsafe { write_csr_i64(op, row_ptr, col_idx, values, lengths) })
}

/// Deprecated spelling of `adj_operator_write_csr_i64` without the arrays'
/// lengths (kept for 0.2 clients): `row_ptr` must hold n+1 entries,
/// `col_idx` and `values` nnz entries.
#[no_mangle]
pub unsafe extern "C" fn adj_operator_to_csr_i64(
    op: *const adj_operator,
    row_ptr: *mut i64,
    col_idx: *mut i64,
    values: *mut f64,
) -> adj_status {
    // SAFETY: forwarded contract.
    boundary(|| unsafe { write_csr_i64(op, row_ptr, col_idx, values, None) })
}

/// The CSR export into arrays of the caller's `lengths` (row_ptr, col_idx,
/// values), or of the lengths the deprecated contract promises (`None`).
///
/// # Safety
/// `op` is NULL or live; the arrays hold the lengths given or promised.
unsafe fn write_csr_i64(
    op: *const adj_operator,
    row_ptr: *mut i64,
    col_idx: *mut i64,
    values: *mut f64,
    lengths: Option<[usize; 3]>,
) -> Result<()> {
    // SAFETY: NULL or a live handle.
    let op = unsafe { handle(op, "op") }?;
    let csr = op.to_csr()?;
    let (n, nnz) = (csr.row_ptr().len() - 1, csr.nnz());
    if let Some([row_ptr_len, col_idx_len, values_len]) = lengths {
        Error::check_len("row_ptr_len", n + 1, row_ptr_len)?;
        Error::check_len("col_idx_len", nnz, col_idx_len)?;
        Error::check_len("values_len", nnz, values_len)?;
    }
    // SAFETY: the caller passes arrays of these lengths.
    let (ptr, cols, vals) = unsafe {
        (
            slice_mut(row_ptr, n + 1, "row_ptr")?,
            slice_mut(col_idx, nnz, "col_idx")?,
            slice_mut(values, nnz, "values")?,
        )
    };
    for (dst, &src) in ptr.iter_mut().zip(csr.row_ptr()) {
        *dst = i64::from(src);
    }
    for (dst, &src) in cols.iter_mut().zip(csr.col_idx()) {
        *dst = i64::from(src);
    }
    vals.copy_from_slice(csr.values());
    Ok(())
}

/// Writes the number of cells nx·ny·nz of a grid operator to `*num_cells`.
#[no_mangle]
pub unsafe extern "C" fn adj_grid_num_cells(
    op: *const adj_operator,
    num_cells: *mut usize,
) -> adj_status {
    boundary(|| {
        // SAFETY: NULL or a live handle.
        let grid = unsafe { handle(op, "op") }?.grid()?;
        out_ptr(num_cells, "num_cells")?;
        // SAFETY: checked non-NULL.
        unsafe { *num_cells = grid.num_cells() };
        Ok(())
    })
}

/// The body of the gather functions, for fields of doubles or floats.
///
/// # Safety
/// Pointers as documented on `adj_grid_gather`.
unsafe fn gather<F: FieldValue>(
    op: *const adj_operator,
    field: *const F,
    num_cells: usize,
    unknowns: *mut f64,
    n: usize,
) -> adj_status {
    boundary(|| {
        // SAFETY: NULL or a live handle.
        let grid = unsafe { handle(op, "op") }?.grid()?;
        // SAFETY: the caller passes arrays of the given lengths.
        let (field, unknowns) = unsafe {
            (
                slice(field, num_cells, "field")?,
                slice_mut(unknowns, n, "unknowns")?,
            )
        };
        grid.gather(field, unknowns)
    })
}

/// The body of the scatter functions, for fields of doubles or floats.
///
/// # Safety
/// Pointers as documented on `adj_grid_scatter`.
unsafe fn scatter<F: FieldValue>(
    op: *const adj_operator,
    unknowns: *const f64,
    n: usize,
    field: *mut F,
    num_cells: usize,
) -> adj_status {
    boundary(|| {
        // SAFETY: NULL or a live handle.
        let grid = unsafe { handle(op, "op") }?.grid()?;
        // SAFETY: the caller passes arrays of the given lengths.
        let (unknowns, field) = unsafe {
            (
                slice(unknowns, n, "unknowns")?,
                slice_mut(field, num_cells, "field")?,
            )
        };
        grid.scatter(unknowns, field)
    })
}

/// Gathers the fluid cells of a per-cell field (`num_cells` doubles) into
/// the unknowns vector (`n` doubles) of a grid operator.
#[no_mangle]
pub unsafe extern "C" fn adj_grid_gather(
    op: *const adj_operator,
    field: *const f64,
    num_cells: usize,
    unknowns: *mut f64,
    n: usize,
) -> adj_status {
    // SAFETY: forwarded contract.
    unsafe { gather(op, field, num_cells, unknowns, n) }
}

/// Scatters the unknowns (`n` doubles) of a grid operator into a per-cell
/// field (`num_cells` doubles); solid and air cells are set to 0.
#[no_mangle]
pub unsafe extern "C" fn adj_grid_scatter(
    op: *const adj_operator,
    unknowns: *const f64,
    n: usize,
    field: *mut f64,
    num_cells: usize,
) -> adj_status {
    // SAFETY: forwarded contract.
    unsafe { scatter(op, unknowns, n, field, num_cells) }
}

/// Gathers the fluid cells of a float32 per-cell field (`num_cells`
/// floats) into the unknowns vector (`n` doubles) of a grid operator.
#[no_mangle]
pub unsafe extern "C" fn adj_grid_gather_f32(
    op: *const adj_operator,
    field: *const f32,
    num_cells: usize,
    unknowns: *mut f64,
    n: usize,
) -> adj_status {
    // SAFETY: forwarded contract.
    unsafe { gather(op, field, num_cells, unknowns, n) }
}

/// Scatters the unknowns (`n` doubles) of a grid operator into a float32
/// per-cell field (`num_cells` floats, rounded to nearest); solid and air
/// cells are set to 0.
#[no_mangle]
pub unsafe extern "C" fn adj_grid_scatter_f32(
    op: *const adj_operator,
    unknowns: *const f64,
    n: usize,
    field: *mut f32,
    num_cells: usize,
) -> adj_status {
    // SAFETY: forwarded contract.
    unsafe { scatter(op, unknowns, n, field, num_cells) }
}
