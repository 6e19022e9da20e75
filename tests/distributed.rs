//! Distributed MGPCG with ranks as threads: the same iterations as the
//! serial MGPCG and the same solution for any Cartesian decomposition
//! (slabs, pencils, blocks, uneven, odd sizes), closed domains with
//! enclosed regions inside one box and across boxes, a rank without
//! fluid, and every bad input and communicator failure stopping all ranks
//! with a status.

mod common;
#[path = "common/ranks.rs"]
mod ranks;

use adjunct::distributed::{
    distributed_mgpcg, Communicator, DistributedGridPoisson, DistributedMultigrid,
    DistributedSolveReport, GridBox,
};
use adjunct::krylov::{CoarseOperators, Multigrid, MultigridOptions, Precision};
use adjunct::{cg, scene, Cell, Error, GridPoisson, KrylovOptions, LinearOperator};
use common::Rng;
use ranks::{boxes, run_ranks, Failure};

/// A global problem: cells, optional face coefficients, right-hand side
/// per cell (0 off fluid cells).
struct Problem {
    dims: [usize; 3],
    cells: Vec<Cell>,
    beta: Option<Vec<f64>>,
    rhs_field: Vec<f64>,
    spacing: f64,
}

impl Problem {
    fn operator(&self) -> GridPoisson {
        let builder = GridPoisson::builder(self.dims, &self.cells).spacing([self.spacing; 3]);
        match &self.beta {
            Some(beta) => builder.face_coefficients(beta).build().unwrap(),
            None => builder.build().unwrap(),
        }
    }

    fn ndim(&self) -> usize {
        if self.dims[2] > 1 {
            3
        } else {
            2
        }
    }

    /// The cells of the box `owned`, the values of `field` there, and
    /// their face coefficients (axis by axis; empty without), x fastest.
    fn on_box(&self, owned: &GridBox, field: &[f64]) -> (Vec<Cell>, Vec<f64>, Vec<f64>) {
        let dims = self.dims;
        let global = |c: [usize; 3]| c[0] + dims[0] * (c[1] + dims[1] * c[2]);
        let (mut cells, mut values) = (Vec::new(), Vec::new());
        let mut beta = vec![Vec::new(); self.ndim()];
        for_each_cell(owned, |c| {
            cells.push(self.cells[global(c)]);
            values.push(field[global(c)]);
            if let Some(all) = &self.beta {
                for (a, part) in beta.iter_mut().enumerate() {
                    part.push(all[a * self.cells.len() + global(c)]);
                }
            }
        });
        (cells, values, beta.concat())
    }

    /// This rank's operator of the box `owned`, with its `cells` and face
    /// coefficients `beta` (as [`Problem::on_box`] gives them).
    fn rank_operator(
        &self,
        comm: Box<dyn Communicator>,
        owned: GridBox,
        cells: &[Cell],
        beta: &[f64],
    ) -> Result<DistributedGridPoisson, Error> {
        let builder = DistributedGridPoisson::builder(comm, self.dims, owned, cells)
            .spacing([self.spacing; 3]);
        if self.beta.is_some() {
            builder.face_coefficients(beta).build()
        } else {
            builder.build()
        }
    }
}

fn obstacles(dims: [usize; 3], air_layers: usize) -> Problem {
    let p = scene::obstacles(dims, air_layers).unwrap();
    let a = p.operator().unwrap();
    let mut rhs_field = vec![0.0; a.num_cells()];
    a.scatter(&p.rhs, &mut rhs_field).unwrap();
    Problem {
        dims,
        cells: p.cells,
        beta: None,
        rhs_field,
        spacing: p.spacing,
    }
}

fn mg_options(precision: Precision) -> MultigridOptions {
    MultigridOptions {
        precision,
        coarse_operators: CoarseOperators::Rediscretized,
        ..MultigridOptions::default()
    }
}

/// The serial MGPCG: iterations and solution field.
fn serial(problem: &Problem, precision: Precision) -> (usize, Vec<f64>) {
    let a = problem.operator();
    let m = Multigrid::new(&a, &mg_options(precision)).unwrap();
    let mut b = vec![0.0; a.dim()];
    a.gather(&problem.rhs_field, &mut b).unwrap();
    let mut x = vec![0.0; a.dim()];
    let report = cg(&a, &m, &b, &mut x, &KrylovOptions::default()).unwrap();
    let mut field = vec![0.0; a.num_cells()];
    a.scatter(&x, &mut field).unwrap();
    (report.iterations, field)
}

/// Runs the distributed solve of `problem` over the decomposition `cuts`;
/// returns each rank's result and the assembled solution field.
fn distributed(
    problem: &Problem,
    cuts: &[Vec<usize>; 3],
    precision: Precision,
    failure: Failure,
    edit: &(dyn Fn(usize, &mut GridBox, &mut Vec<Cell>) + Sync),
) -> (Vec<Result<DistributedSolveReport, Error>>, Vec<f64>) {
    let boxes = boxes(cuts);
    let dims = problem.dims;
    let global = |c: [usize; 3]| c[0] + dims[0] * (c[1] + dims[1] * c[2]);
    let results = run_ranks(cuts, failure, true, |rank, comm: Box<dyn Communicator>| {
        let mut owned = boxes[rank];
        let (mut cells, rhs, beta) = problem.on_box(&owned, &problem.rhs_field);
        edit(rank, &mut owned, &mut cells);
        let a = problem.rank_operator(comm, owned, &cells, &beta)?;
        let m = DistributedMultigrid::new(&a, &mg_options(precision))?;
        let mut b = vec![0.0; a.dim()];
        let mut cell_of = Vec::new();
        for (i, &v) in rhs.iter().enumerate() {
            if let Some(u) = a.unknown_of_cell(i) {
                b[u] = v;
                cell_of.push(i);
            }
        }
        let mut x = vec![0.0; a.dim()];
        let report = distributed_mgpcg(&a, &m, &b, &mut x, &KrylovOptions::default())?;
        Ok((report, cell_of, x))
    });
    let mut field = vec![0.0; problem.cells.len()];
    let reports = results
        .into_iter()
        .enumerate()
        .map(|(rank, r)| {
            r.map(|(report, cell_of, x)| {
                for (u, &i) in cell_of.iter().enumerate() {
                    field[global(boxes[rank].coords_of(i))] = x[u];
                }
                report
            })
        })
        .collect();
    (reports, field)
}

fn for_each_cell(b: &GridBox, mut f: impl FnMut([usize; 3])) {
    for k in b.lo[2]..b.hi[2] {
        for j in b.lo[1]..b.hi[1] {
            for i in b.lo[0]..b.hi[0] {
                f([i, j, k]);
            }
        }
    }
}

trait Coords {
    fn coords_of(&self, i: usize) -> [usize; 3];
}

impl Coords for GridBox {
    fn coords_of(&self, i: usize) -> [usize; 3] {
        let d = self.dims();
        [
            self.lo[0] + i % d[0],
            self.lo[1] + (i / d[0]) % d[1],
            self.lo[2] + i / (d[0] * d[1]),
        ]
    }
}

fn no_edit(_: usize, _: &mut GridBox, _: &mut Vec<Cell>) {}

/// ‖b − A x‖ / ‖b‖ of a field x, with the serial operator.
fn true_relative_residual(problem: &Problem, field: &[f64]) -> f64 {
    let a = problem.operator();
    let (mut x, mut b, mut ax) = (vec![0.0; a.dim()], vec![0.0; a.dim()], vec![0.0; a.dim()]);
    a.gather(field, &mut x).unwrap();
    a.gather(&problem.rhs_field, &mut b).unwrap();
    a.apply(&x, &mut ax).unwrap();
    let r: f64 = b.iter().zip(&ax).map(|(b, ax)| (b - ax).powi(2)).sum();
    let bn: f64 = b.iter().map(|v| v * v).sum();
    (r / bn).sqrt()
}

fn relative_difference(x: &[f64], y: &[f64]) -> f64 {
    let d: f64 = x.iter().zip(y).map(|(a, b)| (a - b).powi(2)).sum();
    let n: f64 = y.iter().map(|v| v * v).sum();
    (d / n).sqrt()
}

/// Cuts of [0, n) into `parts` uneven pieces (every odd cut one past
/// the even split).
fn uneven(n: usize, parts: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = (0..=parts).map(|p| p * n / parts + p % 2).collect();
    cuts[parts] = n;
    assert!(cuts.windows(2).all(|w| w[0] < w[1]), "{cuts:?}");
    cuts
}

fn whole(n: usize) -> Vec<usize> {
    vec![0, n]
}

/// Solves `problem` over each decomposition and checks it against the
/// serial MGPCG: the same iteration count (within `slack`) and solution
/// (1e-10 relative; 1e-8 when the count moved within the slack).
fn check_against_serial(
    problem: &Problem,
    decompositions: &[[Vec<usize>; 3]],
    precision: Precision,
    slack: usize,
) {
    let (serial_iterations, serial_field) = serial(problem, precision);
    for cuts in decompositions {
        let (reports, field) = distributed(problem, cuts, precision, Failure::None, &no_edit);
        let reports: Vec<DistributedSolveReport> = reports
            .into_iter()
            .map(|r| r.expect("the distributed solve"))
            .collect();
        for r in &reports {
            assert_eq!(
                r.solve, reports[0].solve,
                "{cuts:?}: every rank reports the same"
            );
        }
        let solve = &reports[0].solve;
        assert!(
            solve.iterations.abs_diff(serial_iterations) <= slack,
            "{:?} {cuts:?}: {} iterations against the serial MGPCG's {serial_iterations}",
            problem.dims,
            solve.iterations
        );
        let bound = if solve.iterations == serial_iterations {
            1e-10
        } else {
            1e-8
        };
        let difference = relative_difference(&field, &serial_field);
        assert!(
            difference < bound,
            "{cuts:?}: solution differs by {difference:e}"
        );
        let residual = true_relative_residual(problem, &field);
        assert!(residual <= 1.01e-8, "{cuts:?}: true residual {residual:e}");
        // One reduction per iteration for CG, one for the gathered level,
        // and a fixed few to start and to agree on the end.
        let allreduces = reports[0].comm.allreduces;
        assert!(
            allreduces <= 2 * solve.iterations as u64 + 6,
            "{cuts:?}: {allreduces} reductions in {} iterations",
            solve.iterations
        );
    }
}

#[test]
fn odd_3d_grid_matches_the_serial_solve_for_every_decomposition() {
    let problem = obstacles([45, 38, 29], 4);
    let [nx, ny, nz] = problem.dims;
    check_against_serial(
        &problem,
        &[
            [whole(nx), whole(ny), whole(nz)],
            [uneven(nx, 2), whole(ny), whole(nz)],
            [whole(nx), whole(ny), uneven(nz, 3)],
            [uneven(nx, 2), uneven(ny, 2), whole(nz)],
            [uneven(nx, 2), vec![0, 17, ny], vec![0, 15, nz]],
            [whole(nx), whole(ny), uneven(nz, 8)],
        ],
        Precision::Single,
        0,
    );
}

#[test]
fn both_precisions_and_64_cubed_blocks() {
    let problem = obstacles([64, 64, 64], 6);
    check_against_serial(
        &problem,
        &[
            [vec![0, 32, 64], vec![0, 32, 64], vec![0, 32, 64]],
            [vec![0, 21, 64], whole(64), vec![0, 40, 64]],
        ],
        Precision::Double,
        0,
    );
    check_against_serial(
        &problem,
        &[[vec![0, 32, 64], vec![0, 32, 64], vec![0, 32, 64]]],
        Precision::Single,
        0,
    );
}

#[test]
fn two_dimensional_grid_with_coefficient_contrast() {
    // The rediscretised cycle needs 65 iterations at this contrast, and
    // the order of the ranks' partial sums (rounding) may move the
    // stopping test by one.
    let mut problem = obstacles([61, 47, 1], 3);
    let mut rng = Rng::new(5);
    let n = problem.cells.len();
    // Face coefficients 1 or 1e3 in blobs of 8×8 cells.
    problem.beta = Some(
        (0..2 * n)
            .map(|f| {
                let c = f % n;
                let (i, j) = (c % 61, c / 61);
                if ((i / 8) + (j / 8)) % 3 == 0 {
                    1e3
                } else {
                    1.0 + 0.1 * rng.uniform()
                }
            })
            .collect(),
    );
    check_against_serial(
        &problem,
        &[
            [uneven(61, 3), whole(47), whole(1)],
            [vec![0, 30, 61], vec![0, 11, 47], whole(1)],
        ],
        Precision::Double,
        1,
    );
}

/// The distributed product A x and its xᵀ(A x) equal the serial ones on
/// every rank's rows: a 3D grid with solids, air and face coefficients of
/// 1e3 contrast, over slabs (some one layer thick), pencils and blocks.
#[test]
fn products_equal_the_serial_product_for_every_decomposition() {
    let mut problem = obstacles([17, 13, 11], 2);
    let n = problem.cells.len();
    let mut rng = Rng::new(11);
    let contrast: Vec<f64> = (0..3 * n)
        .map(|_| {
            if rng.uniform() < 0.2 {
                1e3
            } else {
                0.5 + rng.uniform()
            }
        })
        .collect();
    let x_field: Vec<f64> = (0..n).map(|_| rng.uniform() - 0.5).collect();
    for with_beta in [false, true] {
        problem.beta = with_beta.then(|| contrast.clone());
        let problem_here = &problem;
        let serial = problem_here.operator();
        let mut x = vec![0.0; serial.dim()];
        serial.gather(&x_field, &mut x).unwrap();
        let mut ax = vec![0.0; serial.dim()];
        let expected_dot = serial.apply_dot(&x, &mut ax).unwrap();
        let mut ax_field = vec![0.0f64; n];
        serial.scatter(&ax, &mut ax_field).unwrap();
        let [nx, ny, nz] = problem.dims;
        for cuts in [
            [whole(nx), whole(ny), vec![0, 1, 2, 6, 10, 11]],
            [uneven(nx, 3), whole(ny), whole(nz)],
            [vec![0, 8, 17], vec![0, 1, 13], whole(nz)],
            [vec![0, 9, 17], vec![0, 6, 13], vec![0, 5, 11]],
        ] {
            let boxes = boxes(&cuts);
            let dims = problem.dims;
            let global = |c: [usize; 3]| c[0] + dims[0] * (c[1] + dims[1] * c[2]);
            let results = run_ranks(&cuts, Failure::None, true, |rank, comm| {
                let owned = boxes[rank];
                let (cells, xs, beta) = problem_here.on_box(&owned, &x_field);
                let a = problem_here
                    .rank_operator(comm, owned, &cells, &beta)
                    .unwrap();
                let mut x = vec![0.0; a.dim()];
                a.gather(&xs, &mut x).unwrap();
                let mut y = vec![0.0; a.dim()];
                let dot = a.apply_dot(&x, &mut y).unwrap();
                let mut plain = vec![0.0; a.dim()];
                a.apply(&x, &mut plain).unwrap();
                assert_eq!(y, plain);
                let mut field = vec![0.0f64; owned.num_cells()];
                a.scatter(&y, &mut field).unwrap();
                (dot, field)
            });
            let mut dot = 0.0;
            for (rank, (d, field)) in results.into_iter().enumerate() {
                dot += d;
                for (i, &v) in field.iter().enumerate() {
                    let want = ax_field[global(boxes[rank].coords_of(i))];
                    assert!(
                        (v - want).abs() <= 1e-12 * want.abs().max(1.0),
                        "{cuts:?}, β {with_beta}: rank {rank} cell {i}: {v} against {want}"
                    );
                }
            }
            assert!(
                (dot - expected_dot).abs() <= 1e-12 * expected_dot.abs(),
                "{cuts:?}: xᵀAx {dot} against {expected_dot}"
            );
        }
    }
}

/// A closed box (no air): one enclosed region across all boxes, plus a
/// pocket sealed by walls inside one box and one sealed pocket that
/// crosses two boxes. The right-hand side has zero mean on each.
#[test]
fn closed_domain_with_enclosed_regions_inside_and_across_boxes() {
    let dims = [24, 20, 18];
    let mut problem = obstacles(dims, 0);
    let global = |i: usize, j: usize, k: usize| i + dims[0] * (j + dims[1] * k);
    let mut seal = |lo: [usize; 3], hi: [usize; 3]| {
        for k in lo[2] - 1..=hi[2] {
            for j in lo[1] - 1..=hi[1] {
                for i in lo[0] - 1..=hi[0] {
                    let inside = (0..3).all(|a| [i, j, k][a] >= lo[a] && [i, j, k][a] < hi[a]);
                    problem.cells[global(i, j, k)] = if inside { Cell::Fluid } else { Cell::Solid };
                }
            }
        }
    };
    seal([2, 2, 2], [5, 5, 5]); // inside the box [0, 12) × [0, 10) × [0, 9)
    seal([9, 13, 12], [15, 16, 15]); // across x = 12
    let a = problem.operator();
    assert!(a.is_singular());
    // A right-hand side with zero mean on each region: A y for random y.
    let mut rng = Rng::new(3);
    let y = rng.vector(a.dim());
    let mut b = vec![0.0; a.dim()];
    a.apply(&y, &mut b).unwrap();
    a.scatter(&b, &mut problem.rhs_field).unwrap();
    let cuts = [vec![0, 12, 24], vec![0, 10, 20], vec![0, 9, 18]];
    let (serial_iterations, serial_field) = serial(&problem, Precision::Double);
    let (reports, field) = distributed(&problem, &cuts, Precision::Double, Failure::None, &no_edit);
    let solve = &reports[0].as_ref().unwrap().solve;
    assert_eq!(solve.iterations, serial_iterations);
    // Solutions are defined up to constants on each region: compare A x.
    let residual = true_relative_residual(&problem, &field);
    assert!(residual <= 1.01e-8, "true residual {residual:e}");
    let (mut x, mut xs) = (vec![0.0; a.dim()], vec![0.0; a.dim()]);
    a.gather(&field, &mut x).unwrap();
    a.gather(&serial_field, &mut xs).unwrap();
    assert!(
        relative_difference(&x, &xs) < 1e-10,
        "both remove the null space"
    );

    // An inconsistent right-hand side is refused on every rank.
    let mut inconsistent = problem;
    for v in inconsistent.rhs_field.iter_mut() {
        *v += 1.0;
    }
    let (reports, _) = distributed(
        &inconsistent,
        &cuts,
        Precision::Double,
        Failure::None,
        &no_edit,
    );
    for r in reports {
        match r {
            Err(Error::InvalidArgument { argument: "b", .. }) => {}
            other => panic!("expected an inconsistent-b error, got {other:?}"),
        }
    }
}

/// A rank whose box is all solid (no unknowns) takes part normally.
#[test]
fn a_rank_without_fluid_cells() {
    let dims = [30, 20, 16];
    let mut problem = obstacles(dims, 3);
    // The box x ∈ [0, 10) of the first y half is all solid.
    for k in 0..dims[2] {
        for j in 0..10 {
            for i in 0..10 {
                let c = i + dims[0] * (j + dims[1] * k);
                problem.cells[c] = Cell::Solid;
                problem.rhs_field[c] = 0.0;
            }
        }
    }
    check_against_serial(
        &problem,
        &[[vec![0, 10, 30], vec![0, 10, 20], whole(16)]],
        Precision::Single,
        0,
    );
}

fn expect_all_fail(
    reports: Vec<Result<DistributedSolveReport, Error>>,
    what: &str,
    check: impl Fn(usize, &Error) -> bool,
) {
    for (rank, r) in reports.into_iter().enumerate() {
        match r {
            Err(e) if check(rank, &e) => {}
            other => panic!("{what}: rank {rank} returned {other:?}"),
        }
    }
}

fn invalid(argument: &'static str) -> impl Fn(usize, &Error) -> bool {
    move |_, e| matches!(e, Error::InvalidArgument { argument: a, .. } if *a == argument)
}

#[test]
fn bad_decompositions_fail_on_every_rank() {
    let problem = obstacles([20, 18, 12], 2);
    let cuts = [whole(20), whole(18), vec![0, 4, 8, 12]];
    // Overlap: rank 1's box starts one layer lower.
    let overlap = |rank: usize, b: &mut GridBox, cells: &mut Vec<Cell>| {
        if rank == 1 {
            b.lo[2] -= 1;
            cells.splice(0..0, vec![Cell::Fluid; 20 * 18]);
        }
    };
    let (reports, _) = distributed(&problem, &cuts, Precision::Single, Failure::None, &overlap);
    expect_all_fail(reports, "overlap", invalid("box"));
    // Gap: rank 1's box ends one layer early.
    let gap = |rank: usize, b: &mut GridBox, cells: &mut Vec<Cell>| {
        if rank == 1 {
            b.hi[2] -= 1;
            cells.truncate(cells.len() - 20 * 18);
        }
    };
    let (reports, _) = distributed(&problem, &cuts, Precision::Single, Failure::None, &gap);
    expect_all_fail(reports, "gap", invalid("box"));
    // Outside the grid.
    let outside = |rank: usize, b: &mut GridBox, cells: &mut Vec<Cell>| {
        if rank == 2 {
            b.hi[2] += 1;
            cells.extend(vec![Cell::Fluid; 20 * 18]);
        }
    };
    let (reports, _) = distributed(&problem, &cuts, Precision::Single, Failure::None, &outside);
    expect_all_fail(reports, "outside", invalid("box"));
    // Wrong cell count on one rank: that rank names `cells`, the others
    // the communicator.
    let short = |rank: usize, _: &mut GridBox, cells: &mut Vec<Cell>| {
        if rank == 0 {
            cells.pop();
        }
    };
    let (reports, _) = distributed(&problem, &cuts, Precision::Single, Failure::None, &short);
    expect_all_fail(reports, "short cells", |rank, e| {
        if rank == 0 {
            matches!(
                e,
                Error::DimensionMismatch {
                    argument: "cells",
                    ..
                }
            )
        } else {
            matches!(
                e,
                Error::InvalidArgument {
                    argument: "comm",
                    ..
                }
            )
        }
    });
}

#[test]
fn global_sizes_that_differ_between_ranks_fail_on_every_rank() {
    let problem = obstacles([20, 18, 12], 2);
    let boxes = boxes(&[whole(20), whole(18), vec![0, 4, 8, 12]]);
    let results = run_ranks(
        &[whole(20), whole(18), vec![0, 4, 8, 12]],
        Failure::None,
        true,
        |rank, comm| {
            let dims = if rank == 2 {
                [20, 18, 13]
            } else {
                [20, 18, 12]
            };
            let owned = boxes[rank];
            let cells = vec![Cell::Fluid; owned.num_cells()];
            DistributedGridPoisson::builder(comm, dims, owned, &cells)
                .spacing([problem.spacing; 3])
                .build()
                .map(|_| ())
        },
    );
    for (rank, r) in results.into_iter().enumerate() {
        assert!(
            matches!(
                &r,
                Err(Error::InvalidArgument {
                    argument: "dims",
                    ..
                })
            ),
            "rank {rank}: {r:?}"
        );
    }
}

/// A communicator call failing on one rank, at setup or inside the solve,
/// and an offset the communicator cannot serve: every rank returns an
/// error and none waits forever.
#[test]
fn communicator_failures_stop_every_rank() {
    let problem = obstacles([20, 18, 12], 2);
    let cuts = [whole(20), vec![0, 9, 18], vec![0, 4, 8, 12]];
    for failure in [
        Failure::Exchange { rank: 1, call: 0 },
        Failure::Exchange { rank: 3, call: 5 },
        Failure::Exchange { rank: 4, call: 30 },
        Failure::Exchange { rank: 2, call: 70 },
        Failure::Allreduce { rank: 0, call: 1 },
        Failure::Allreduce { rank: 3, call: 8 },
        Failure::Allreduce { rank: 5, call: 20 },
    ] {
        let (reports, _) = distributed(&problem, &cuts, Precision::Single, failure, &no_edit);
        let failing = match failure {
            Failure::Exchange { rank, .. } | Failure::Allreduce { rank, .. } => rank,
            Failure::None => unreachable!(),
        };
        expect_all_fail(reports, &format!("{failure:?}"), |rank, e| {
            let own = matches!(
                e,
                Error::Callback {
                    callback: "exchange" | "allreduce_sum",
                    ..
                }
            );
            let other = matches!(e, Error::Callback { code: -1, .. });
            if rank == failing {
                own
            } else {
                other || own
            }
        });
    }
    // Only face neighbours served: the first exchange with an edge
    // neighbour fails on every rank that has one.
    let boxes = boxes(&cuts);
    let results = run_ranks(&cuts, Failure::None, false, |rank, comm| {
        let owned = boxes[rank];
        let cells = vec![Cell::Fluid; owned.num_cells()];
        DistributedGridPoisson::builder(comm, problem.dims, owned, &cells)
            .build()
            .map(|_| ())
    });
    for (rank, r) in results.into_iter().enumerate() {
        assert!(r.is_err(), "rank {rank}: {r:?}");
    }
}

/// A new frame on the same communicator (`with_cells`): a cold solve on
/// the new cells takes the serial solve's iterations, a warm start from
/// the last solution converges to the true residual, and a bad frame on
/// one rank fails on every rank while the old operator stays usable.
#[test]
fn new_frames_on_the_same_communicator() {
    let dims = [30, 26, 20];
    let first = obstacles(dims, 3);
    let mut second = obstacles(dims, 5);
    // Move a solid block across the boxes.
    for k in 4..9 {
        for j in 10..16 {
            for i in 12..19 {
                let c = i + dims[0] * (j + dims[1] * k);
                second.cells[c] = Cell::Solid;
                second.rhs_field[c] = 0.0;
            }
        }
    }
    let (serial_iterations, _) = serial(&second, Precision::Single);
    let cuts = [vec![0, 14, 30], vec![0, 12, 26], whole(20)];
    let boxes = boxes(&cuts);
    let global = |c: [usize; 3]| c[0] + dims[0] * (c[1] + dims[1] * c[2]);
    let results = run_ranks(&cuts, Failure::None, true, |rank, comm| {
        let owned = boxes[rank];
        let part = |p: &Problem| {
            let (mut cells, mut rhs) = (Vec::new(), Vec::new());
            for_each_cell(&owned, |c| {
                cells.push(p.cells[global(c)]);
                rhs.push(p.rhs_field[global(c)]);
            });
            (cells, rhs)
        };
        let (cells, rhs) = part(&first);
        let a = DistributedGridPoisson::builder(comm, dims, owned, &cells)
            .spacing([first.spacing; 3])
            .build()
            .unwrap();
        let solve = |a: &DistributedGridPoisson, rhs: &[f64], x0: Option<&[f64]>| {
            let m = DistributedMultigrid::new(a, &mg_options(Precision::Single)).unwrap();
            let mut b = vec![0.0; a.dim()];
            a.gather(rhs, &mut b).unwrap();
            let mut x = vec![0.0; a.dim()];
            let mut options = KrylovOptions::default();
            if let Some(field) = x0 {
                a.gather(field, &mut x).unwrap();
                options.nonzero_initial_guess = true;
            }
            let report = distributed_mgpcg(a, &m, &b, &mut x, &options).unwrap();
            let mut field = vec![0.0; owned.num_cells()];
            a.scatter(&x, &mut field).unwrap();
            (report.solve, field)
        };
        let (_, p1) = solve(&a, &rhs, None);
        let (cells2, rhs2) = part(&second);
        // A bad frame on rank 1: every rank fails, the old operator stays.
        let short = if rank == 1 { &cells2[1..] } else { &cells2[..] };
        let bad = a.with_cells(short, None);
        assert!(bad.is_err(), "rank {rank}: {bad:?}");
        let a2 = a.with_cells(&cells2, None).unwrap();
        let (cold, _) = solve(&a2, &rhs2, None);
        let (warm, p2) = solve(&a2, &rhs2, Some(&p1));
        let (again, _) = solve(&a, &rhs, Some(&p1));
        (cold, warm, again, p2)
    });
    let mut field = vec![0.0; second.cells.len()];
    for (rank, (cold, warm, again, p2)) in results.iter().enumerate() {
        assert_eq!(
            cold.iterations, serial_iterations,
            "rank {rank}: cold solve of the new frame"
        );
        assert!(warm.relative_residual <= 1e-8, "{warm:?}");
        assert!(
            again.iterations <= 1,
            "the old operator, from its own solution: {again:?}"
        );
        for (i, &v) in p2.iter().enumerate() {
            field[global(boxes[rank].coords_of(i))] = v;
        }
    }
    let residual = true_relative_residual(&second, &field);
    assert!(
        residual <= 1.01e-8,
        "warm-started frame: true residual {residual:e}"
    );
}
