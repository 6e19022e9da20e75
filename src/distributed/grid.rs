//! The grid Poisson operator of a grid split into one box per rank.
//!
//! Each rank keeps a [`GridPoisson`] over its box and one ghost layer of
//! its neighbours' cells (exchanged once at setup, with their face
//! coefficients), so that the rows of its own cells are the whole grid's
//! rows; the V-cycle runs on it. A product y = A x runs the threaded
//! stencil kernel of the box alone on x as it is, exchanges the ghost
//! layer's values with the face neighbours, and adds the couplings across
//! the box's faces.

use super::comm::{Collective, CommStats, Communicator};
use super::decomposition::{Decomposition, GridBox};
use super::ghosts::{GhostFace, GhostLayer};
use super::halo::Halo;
use super::regions::Regions;
use super::runs::OwnedRuns;
use crate::error::{Error, Result};
use crate::operator::{Cell, FieldValue, GridPoisson, GridPoissonBuilder, LinearOperator};
use std::rc::Rc;
use std::sync::Mutex;

/// Options of a [`DistributedGridPoisson`]; see
/// [`DistributedGridPoisson::builder`].
pub struct DistributedGridPoissonBuilder<'a> {
    comm: Box<dyn Communicator>,
    dims: [usize; 3],
    owned: GridBox,
    cells: &'a [Cell],
    spacing: [f64; 3],
    scale: f64,
    face_coefficients: Option<&'a [f64]>,
    /// A failure of this rank's arguments found before the builder (a C
    /// caller's undecodable cells): the setup still meets the other ranks
    /// so that every rank fails.
    local_error: Option<Error>,
}

impl<'a> DistributedGridPoissonBuilder<'a> {
    pub(crate) fn local_error(mut self, error: Error) -> Self {
        self.local_error = Some(error);
        self
    }

    /// Grid spacing h_a per axis, the same on every rank; default 1.
    pub fn spacing(mut self, spacing: [f64; 3]) -> Self {
        self.spacing = spacing;
        self
    }

    /// The scalar factor s of the operator, the same on every rank;
    /// default 1.
    pub fn scale(mut self, scale: f64) -> Self {
        self.scale = scale;
        self
    }

    /// Per-face coefficients of this rank's cells, laid out as
    /// [`GridPoissonBuilder::face_coefficients`](crate::operator::GridPoissonBuilder::face_coefficients)
    /// over the box (β of the +a face of each cell, axis by axis).
    pub fn face_coefficients(mut self, beta: &'a [f64]) -> Self {
        self.face_coefficients = Some(beta);
        self
    }

    /// Builds the operator (collective: every rank calls it).
    pub fn build(self) -> Result<DistributedGridPoisson> {
        DistributedGridPoisson::new(self)
    }
}

/// The grid Poisson operator A of a grid distributed over ranks, acting on
/// this rank's unknowns (its fluid cells, in cell order over its box).
///
/// Every method that computes (products, the null-space projection) is
/// collective: all ranks call it in the same order.
pub struct DistributedGridPoisson {
    pub(crate) collective: Rc<Collective>,
    pub(crate) decomposition: Decomposition,
    /// The operator on the extended box (owned cells and ghost layer).
    pub(crate) local: GridPoisson,
    /// The local unknown of each owned unknown.
    pub(crate) owned_unknowns: Vec<u32>,
    /// Copies between owned and local vectors.
    pub(crate) runs: OwnedRuns,
    /// The operator of the owned box alone, whose unknowns are this
    /// rank's: a product is its product plus the couplings across the
    /// box's faces to the ghost layer. None when the box is the whole
    /// grid (then it is `local`).
    own: Option<GridPoisson>,
    /// The faces between owned and ghost cells that couple them.
    ghost_faces: Vec<GhostFace>,
    /// The face exchange from an owned vector into `ghosts`.
    ghost_halo: Halo,
    /// The values of the ghost layer's fluid cells (in local unknown
    /// order) during a product.
    ghosts: Mutex<Vec<f64>>,
    regions: Regions,
    setup: CommStats,
    setup_seconds: f64,
}

impl std::fmt::Debug for DistributedGridPoisson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DistributedGridPoisson")
            .field("dims", &self.decomposition.dims)
            .field("owned", &self.decomposition.owned())
            .field("unknowns", &self.owned_unknowns.len())
            .finish()
    }
}

/// The code of a cell in setup exchanges and reductions.
pub(crate) fn cell_code(cell: Cell) -> f64 {
    match cell {
        Cell::Solid => 0.0,
        Cell::Fluid => 1.0,
        Cell::Air => 2.0,
    }
}

/// The cell of a [`cell_code`].
pub(crate) fn cell_of_code(code: f64) -> Cell {
    match code as u8 {
        1 => Cell::Fluid,
        2 => Cell::Air,
        _ => Cell::Solid,
    }
}

/// The cells and face coefficients (d per cell, axis-major) of the
/// extended box, from the owned ones and the neighbours' through a setup
/// exchange (collective).
pub(crate) fn extend_cells(
    collective: &Collective,
    decomposition: &Decomposition,
    owned_cell: impl Fn([usize; 3]) -> Cell,
    owned_beta: Option<&dyn Fn(usize, [usize; 3]) -> f64>,
) -> (Vec<Cell>, Option<Vec<f64>>) {
    let (owned, extended) = (decomposition.owned(), decomposition.extended());
    let n = extended.num_cells();
    let halo = Halo::new(decomposition, false, |c| Some(c as u32));
    let mut values = vec![0.0; n];
    owned.for_each(|c| values[extended.index(c)] = cell_code(owned_cell(c)));
    halo.exchange(collective, &mut values);
    let cells = values.iter().map(|&v| cell_of_code(v)).collect();
    let beta = owned_beta.map(|beta| {
        let d = decomposition.ndim();
        let mut all = vec![0.0; d * n];
        for (a, part) in all.chunks_exact_mut(n).enumerate() {
            owned.for_each(|c| part[extended.index(c)] = beta(a, c));
            halo.exchange(collective, part);
        }
        all
    });
    (cells, beta)
}

/// The builder of a grid of `dims` cells with the given data.
fn builder<'a>(
    dims: [usize; 3],
    cells: &'a [Cell],
    spacing: [f64; 3],
    scale: f64,
    beta: Option<&'a [f64]>,
) -> GridPoissonBuilder<'a> {
    let builder = GridPoisson::builder(dims, cells)
        .spacing(spacing)
        .scale(scale);
    match beta {
        Some(beta) => builder.face_coefficients(beta),
        None => builder,
    }
}

/// The operator of this rank's box alone, from its cells and coefficients
/// (checked as a box of a grid with `axes` axes).
fn box_grid(
    owned: GridBox,
    axes: usize,
    cells: &[Cell],
    spacing: [f64; 3],
    scale: f64,
    beta: Option<&[f64]>,
) -> Result<GridPoisson> {
    builder(owned.dims(), cells, spacing, scale, beta).build_box(axes)
}

/// The grid operator of `dims` cells with the given data.
pub(crate) fn local_grid(
    dims: [usize; 3],
    cells: &[Cell],
    spacing: [f64; 3],
    scale: f64,
    beta: Option<&[f64]>,
) -> Result<GridPoisson> {
    builder(dims, cells, spacing, scale, beta).build()
}

impl DistributedGridPoisson {
    /// Starts building this rank's part of the operator on the grid of
    /// `dims` cells (`nz = 1` for 2D): its box `owned` and the [`Cell`] of
    /// each of the box's cells, x fastest. The boxes of all ranks must form
    /// a Cartesian decomposition: along each axis the grid is cut at the
    /// same places for every rank (slabs, pencils or blocks of any sizes),
    /// and every cell is in one box.
    pub fn builder(
        comm: Box<dyn Communicator>,
        dims: [usize; 3],
        owned: GridBox,
        cells: &[Cell],
    ) -> DistributedGridPoissonBuilder<'_> {
        DistributedGridPoissonBuilder {
            comm,
            dims,
            owned,
            cells,
            spacing: [1.0; 3],
            scale: 1.0,
            face_coefficients: None,
            local_error: None,
        }
    }

    fn new(options: DistributedGridPoissonBuilder<'_>) -> Result<Self> {
        let start = std::time::Instant::now();
        let collective = Rc::new(Collective::new(options.comm));
        let owned = options.owned;
        let own = options.local_error.map_or(Ok(()), Err).and_then(|()| {
            (0..3)
                .find(|&a| owned.lo[a] >= owned.hi[a])
                .map_or(Ok(()), |a| {
                    Err(Error::invalid(
                        "box",
                        format!(
                            "the box lo = {:?}, hi = {:?} is empty along axis {a}",
                            owned.lo, owned.hi
                        ),
                    ))
                })
                .and_then(|()| {
                    box_grid(
                        owned,
                        if options.dims[2] > 1 { 3 } else { 2 },
                        options.cells,
                        options.spacing,
                        options.scale,
                        options.face_coefficients,
                    )
                })
        });
        let decomposition = Decomposition::gather(
            &collective,
            options.dims,
            owned,
            options.spacing,
            options.scale,
            own.as_ref().map(|_| ()).map_err(Error::clone),
        )?;
        Self::build(
            collective,
            decomposition,
            own?,
            options.spacing,
            options.scale,
            start,
        )
    }

    /// The operator on `decomposition` for the operator `own` of this
    /// rank's box (collective).
    fn build(
        collective: Rc<Collective>,
        decomposition: Decomposition,
        own: GridPoisson,
        spacing: [f64; 3],
        scale: f64,
        start: std::time::Instant,
    ) -> Result<Self> {
        let before = collective.stats();
        let owned = decomposition.owned();
        if decomposition.extended() == owned {
            // One rank: the box is the grid, and its operator the local one.
            return Self::assemble(
                collective,
                decomposition,
                own.into_whole_grid(),
                None,
                before,
                start,
            );
        }
        let n_owned = owned.num_cells();
        let owned_beta = own
            .face_coefficients()
            .map(|beta| move |a: usize, c: [usize; 3]| beta[a * n_owned + owned.index(c)]);
        let (ext_cells, ext_beta) = extend_cells(
            &collective,
            &decomposition,
            |c| own.cell(owned.index(c)),
            owned_beta
                .as_ref()
                .map(|f| f as &dyn Fn(usize, [usize; 3]) -> f64),
        );
        // The neighbours' cells were checked by them, so this fails only on
        // exhausted memory; the other ranks learn of it at the agreement.
        let local = collective.agree_on(local_grid(
            decomposition.extended().dims(),
            &ext_cells,
            spacing,
            scale,
            ext_beta.as_deref(),
        ))?;
        Self::assemble(collective, decomposition, local, Some(own), before, start)
    }

    /// The operator from its local grid (box and ghost layer) and the
    /// owned box's operator (collective).
    fn assemble(
        collective: Rc<Collective>,
        decomposition: Decomposition,
        local: GridPoisson,
        own: Option<GridPoisson>,
        before: CommStats,
        start: std::time::Instant,
    ) -> Result<Self> {
        let owned_unknowns = owned_unknowns(&decomposition, &local);
        let ghost_layer = GhostLayer::new(&decomposition, &local, &owned_unknowns);
        let regions = Regions::find(
            &collective,
            &decomposition,
            &local,
            &owned_unknowns,
            &ghost_layer,
        );
        collective.agree()?;
        let runs = OwnedRuns::new(&owned_unknowns);
        debug_assert_eq!(own.as_ref().unwrap_or(&local).dim(), owned_unknowns.len());
        let ghost_faces = ghost_layer.faces(&decomposition, &local);
        let ghosts = Mutex::new(vec![0.0; ghost_layer.len]);
        let ghost_halo = ghost_layer.halo;
        Ok(Self {
            runs,
            own,
            ghost_faces,
            ghost_halo,
            ghosts,
            setup: collective.stats() - before,
            collective,
            decomposition,
            local,
            owned_unknowns,
            regions,
            setup_seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// The operator of a new frame (collective): this rank's new `cells`
    /// (and face coefficients, or None) on the same grid, boxes, spacing,
    /// scale and communicator. When any rank's input is bad, every rank
    /// fails (`self` is unchanged either way).
    pub fn with_cells(&self, cells: &[Cell], face_coefficients: Option<&[f64]>) -> Result<Self> {
        let start = std::time::Instant::now();
        let owned = self.owned_box();
        let (spacing, scale) = (self.spacing(), self.scale());
        let axes = self.decomposition.ndim();
        let own = box_grid(owned, axes, cells, spacing, scale, face_coefficients);
        let own = self.collective.agree_on(own)?;
        Self::build(
            Rc::clone(&self.collective),
            self.decomposition.clone(),
            own,
            spacing,
            scale,
            start,
        )
    }

    /// The whole grid's size.
    pub fn dims(&self) -> [usize; 3] {
        self.decomposition.dims
    }

    /// The grid spacing h_a per axis.
    pub fn spacing(&self) -> [f64; 3] {
        self.local.spacing()
    }

    /// The scalar factor s of the operator.
    pub fn scale(&self) -> f64 {
        self.local.scale()
    }

    /// This rank's box.
    pub fn owned_box(&self) -> GridBox {
        self.decomposition.owned()
    }

    /// The unknown of each cell of this rank's box (x fastest), None for
    /// solid and air cells.
    pub fn unknown_of_cell(&self, c: usize) -> Option<usize> {
        let (owned, extended) = (self.decomposition.owned(), self.decomposition.extended());
        let e = self
            .local
            .unknown_of_cell(extended.index(owned.coords(c)))?;
        self.owned_unknowns.binary_search(&(e as u32)).ok()
    }

    /// y ← A x on this rank's rows: the product of the box's own operator,
    /// then the couplings to the ghost layer (one face exchange); with
    /// `DOT`, returns this rank's part of xᵀy.
    fn apply_owned<const DOT: bool>(&self, x: &[f64], y: &mut [f64]) -> Result<f64> {
        Error::check_len("x", self.dim(), x.len())?;
        Error::check_len("y", self.dim(), y.len())?;
        let own = self.own.as_ref().unwrap_or(&self.local);
        let mut dot = if DOT {
            own.apply_dot(x, y)?
        } else {
            own.apply(x, y)?;
            0.0
        };
        if self.ghost_halo.is_empty() {
            return Ok(dot);
        }
        let mut ghosts = self.ghosts.lock().unwrap_or_else(|p| p.into_inner());
        self.ghost_halo
            .exchange_into(&self.collective, x, &mut ghosts);
        for face in &self.ghost_faces {
            let i = face.unknown as usize;
            let across = face.ghost.map_or(0.0, |g| ghosts[g as usize]);
            let change = face.weight * (x[i] - across);
            y[i] += change;
            if DOT {
                dot += x[i] * change;
            }
        }
        Ok(dot)
    }

    /// unknowns ← the values of `field` (this rank's box, x fastest) at
    /// its fluid cells.
    pub fn gather<F: FieldValue>(&self, field: &[F], unknowns: &mut [f64]) -> Result<()> {
        Error::check_len("field", self.owned_box().num_cells(), field.len())?;
        Error::check_len("unknowns", self.dim(), unknowns.len())?;
        let mut u = 0;
        self.for_each_unknown_cell(|c| {
            unknowns[u] = field[c].to_f64();
            u += 1;
        });
        Ok(())
    }

    /// field ← `unknowns` at the fluid cells of this rank's box, 0 at the
    /// others.
    pub fn scatter<F: FieldValue>(&self, unknowns: &[f64], field: &mut [F]) -> Result<()> {
        Error::check_len("field", self.owned_box().num_cells(), field.len())?;
        Error::check_len("unknowns", self.dim(), unknowns.len())?;
        field.fill(F::from_f64(0.0));
        let mut u = 0;
        self.for_each_unknown_cell(|c| {
            field[c] = F::from_f64(unknowns[u]);
            u += 1;
        });
        Ok(())
    }

    /// Calls `f(c)` for the box cell index c of each unknown, in order.
    fn for_each_unknown_cell(&self, mut f: impl FnMut(usize)) {
        let (owned, extended) = (self.decomposition.owned(), self.decomposition.extended());
        let mut c = 0;
        owned.for_each(|g| {
            if self.local.unknown_of_cell(extended.index(g)).is_some() {
                f(c);
            }
            c += 1;
        });
    }

    /// Records a failure of this rank's arguments and ends the collective
    /// step: every rank returns an error.
    pub(crate) fn fail_everywhere(&self, error: Error) -> Error {
        self.collective.fail(error);
        match self.collective.agree() {
            Err(e) => e,
            Ok(()) => Error::Callback {
                callback: "allreduce_sum",
                code: -1,
            },
        }
    }

    /// Communication so far, over the setup and every product.
    pub fn comm_stats(&self) -> CommStats {
        self.collective.stats()
    }

    /// Communication of the setup.
    pub fn setup_comm_stats(&self) -> CommStats {
        self.setup
    }

    /// Wall time of the setup, in seconds.
    pub fn setup_seconds(&self) -> f64 {
        self.setup_seconds
    }

    /// Ends a collective computation: Ok on every rank, or an error on
    /// every rank when a communicator call failed on any.
    pub(crate) fn agree(&self) -> Result<()> {
        self.collective.agree()
    }
}

/// The local unknown of each owned unknown, in owned cell order (which is
/// local unknown order).
fn owned_unknowns(decomposition: &Decomposition, local: &GridPoisson) -> Vec<u32> {
    let extended = decomposition.extended();
    let mut owned_unknowns = Vec::new();
    decomposition.owned().for_each(|c| {
        if let Some(u) = local.unknown_of_cell(extended.index(c)) {
            owned_unknowns.push(u as u32);
        }
    });
    owned_unknowns
}

/// The local unknown of each owned unknown (see [`owned_unknowns`]), and
/// the face exchange over local unknowns.
pub(crate) fn owned_and_halo(
    decomposition: &Decomposition,
    local: &GridPoisson,
) -> (Vec<u32>, Halo) {
    let owned_unknowns = owned_unknowns(decomposition, local);
    let faces = Halo::new(decomposition, true, |c| {
        local.unknown_of_cell(c).map(|u| u as u32)
    });
    (owned_unknowns, faces)
}

impl LinearOperator for DistributedGridPoisson {
    fn dim(&self) -> usize {
        self.owned_unknowns.len()
    }

    /// y ← A x on this rank's rows (collective: one face exchange). A
    /// communicator failure is kept and reported at the next reduction.
    fn apply(&self, x: &[f64], y: &mut [f64]) -> Result<()> {
        self.apply_owned::<false>(x, y).map(|_| ())
    }

    /// y ← A x as [`LinearOperator::apply`]; returns this rank's part of
    /// xᵀy, summed in the same pass.
    fn apply_dot(&self, x: &[f64], y: &mut [f64]) -> Result<f64> {
        self.apply_owned::<true>(x, y)
    }

    fn diagonal(&self) -> Option<Vec<f64>> {
        let diagonal = self.local.diagonal()?;
        Some(
            self.owned_unknowns
                .iter()
                .map(|&e| diagonal[e as usize])
                .collect(),
        )
    }

    fn check_cg_solvable(&self, b: &[f64]) -> Result<()> {
        self.regions.check_consistent(&self.collective, b)
    }

    fn has_null_space(&self) -> bool {
        self.regions.any()
    }

    fn remove_null_space(&self, v: &mut [f64]) -> f64 {
        self.regions.remove(&self.collective, v)
    }
}
