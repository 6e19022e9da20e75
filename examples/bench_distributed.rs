//! The cost of distribution on one machine, all rows in one run (smoke
//! scene, rtol 1e-8, medians over repeats, setup = operator + hierarchy):
//!
//! - serial MGPCG (`cg` with `Multigrid`, rediscretised coarse levels),
//! - the same in the single-reduction form (`cg_single_reduction`),
//! - `distributed_mgpcg` on one rank (`SingleRank`): the distributed
//!   code's own overhead,
//! - `distributed_mgpcg` on R ranks as threads of this process, each
//!   single-threaded (a shared-memory communicator), z-slabs.
//!
//! `cargo run --release --example bench_distributed -- [--n 128] [--ranks 2] [--repeats 3]`
//!
//! The MPI figures of the README come from `examples/mpi/poisson_mpi.c`.

mod common;

use adjunct::distributed::{
    distributed_mgpcg, CommStats, Communicator, DistributedGridPoisson, DistributedMultigrid,
    GridBox, HaloMessage, SingleRank,
};
use adjunct::krylov::{cg_single_reduction, CoarseOperators, Multigrid, MultigridOptions};
use adjunct::{cg, scene, set_num_threads, Cell, KrylovOptions, LinearOperator, SolveReport};
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn options() -> MultigridOptions {
    MultigridOptions {
        coarse_operators: CoarseOperators::Rediscretized,
        ..MultigridOptions::default()
    }
}

/// Ranks as threads of z-slabs: sums through a shared buffer, messages
/// through per-pair queues (slabs have neighbours at z ± 1 only).
struct Slabs {
    size: usize,
    barrier: Barrier,
    sums: Mutex<Vec<Vec<f64>>>,
    mail: Mutex<Vec<Vec<Vec<u8>>>>,
    arrived: Condvar,
}

struct SlabRank {
    world: Arc<Slabs>,
    rank: usize,
}

impl Communicator for SlabRank {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.world.size
    }
    fn allreduce_sum(&self, values: &mut [f64]) -> adjunct::Result<()> {
        self.world.sums.lock().unwrap()[self.rank] = values.to_vec();
        self.world.barrier.wait();
        {
            let sums = self.world.sums.lock().unwrap();
            values.fill(0.0);
            for s in sums.iter() {
                for (v, x) in values.iter_mut().zip(s) {
                    *v += x;
                }
            }
        }
        self.world.barrier.wait();
        Ok(())
    }
    fn exchange(&self, messages: &mut [HaloMessage<'_>]) -> adjunct::Result<()> {
        let to = |m: &HaloMessage<'_>| (self.rank as i64 + i64::from(m.offset[2])) as usize;
        {
            let mut mail = self.world.mail.lock().unwrap();
            for m in messages.iter() {
                mail[to(m) * self.world.size + self.rank].push(m.send.to_vec());
            }
        }
        self.world.arrived.notify_all();
        for m in messages.iter_mut() {
            let from = to(m);
            let mut mail = self.world.mail.lock().unwrap();
            loop {
                let queue = &mut mail[self.rank * self.world.size + from];
                if !queue.is_empty() {
                    m.recv.copy_from_slice(&queue.remove(0));
                    break;
                }
                mail = self.world.arrived.wait(mail).unwrap();
            }
        }
        Ok(())
    }
}

struct Row {
    label: String,
    setup: f64,
    solve: f64,
    report: SolveReport,
    comm: Option<CommStats>,
}

fn main() {
    let n: usize = common::flag("--n").map_or(128, |v| v.parse().expect("--n"));
    let ranks: usize = common::flag("--ranks").map_or(2, |v| v.parse().expect("--ranks"));
    let repeats: usize = common::flag("--repeats").map_or(3, |v| v.parse().expect("--repeats"));
    let problem = scene::smoke([n, n, n], 2).expect("scene");
    let threads = adjunct::num_threads();
    let krylov = KrylovOptions::default();
    let mut rows = Vec::new();

    let (mut setups, mut solves, mut last) = (Vec::new(), Vec::new(), None);
    for _ in 0..repeats {
        let t = Instant::now();
        let a = problem.operator().expect("operator");
        let m = Multigrid::new(&a, &options()).expect("hierarchy");
        setups.push(t.elapsed().as_secs_f64());
        let mut x = vec![0.0; a.dim()];
        let t = Instant::now();
        last = Some(cg(&a, &m, &problem.rhs, &mut x, &krylov).expect("serial"));
        solves.push(t.elapsed().as_secs_f64());
    }
    rows.push(Row {
        label: format!("serial MGPCG, {threads} threads"),
        setup: median(setups),
        solve: median(solves),
        report: last.take().expect("ran"),
        comm: None,
    });

    let a = problem.operator().expect("operator");
    let m = Multigrid::new(&a, &options()).expect("hierarchy");
    let mut solves = Vec::new();
    for _ in 0..repeats {
        let mut x = vec![0.0; a.dim()];
        let t = Instant::now();
        last = Some(cg_single_reduction(&a, &m, &problem.rhs, &mut x, &krylov, None).expect("sr"));
        solves.push(t.elapsed().as_secs_f64());
    }
    rows.push(Row {
        label: format!("serial, single-reduction CG, {threads} threads"),
        setup: rows[0].setup,
        solve: median(solves),
        report: last.take().expect("ran"),
        comm: None,
    });

    let whole = GridBox {
        lo: [0; 3],
        hi: [n; 3],
    };
    let (mut setups, mut solves, mut stats) = (Vec::new(), Vec::new(), None);
    for _ in 0..repeats {
        let t = Instant::now();
        let a =
            DistributedGridPoisson::builder(Box::new(SingleRank), [n; 3], whole, &problem.cells)
                .spacing([problem.spacing; 3])
                .build()
                .expect("operator");
        let m = DistributedMultigrid::new(&a, &options()).expect("hierarchy");
        setups.push(t.elapsed().as_secs_f64());
        let mut x = vec![0.0; a.dim()];
        let t = Instant::now();
        let r = distributed_mgpcg(&a, &m, &problem.rhs, &mut x, &krylov).expect("distributed");
        solves.push(t.elapsed().as_secs_f64());
        stats = Some(r.comm);
        last = Some(r.solve);
    }
    rows.push(Row {
        label: format!("distributed, 1 rank, {threads} threads"),
        setup: median(setups),
        solve: median(solves),
        report: last.take().expect("ran"),
        comm: stats,
    });

    set_num_threads(1).expect("threads");
    let cuts: Vec<usize> = (0..=ranks).map(|r| n * r / ranks).collect();
    let global = problem.operator().expect("operator");
    let mut rhs_field = vec![0.0; n * n * n];
    global
        .scatter(&problem.rhs, &mut rhs_field)
        .expect("scatter");
    let results: Vec<(f64, f64, SolveReport, CommStats)> = {
        let world = Arc::new(Slabs {
            size: ranks,
            barrier: Barrier::new(ranks),
            sums: Mutex::new(vec![Vec::new(); ranks]),
            mail: Mutex::new(vec![Vec::new(); ranks * ranks]),
            arrived: Condvar::new(),
        });
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..ranks)
                .map(|rank| {
                    let (world, cuts, problem, rhs_field) =
                        (Arc::clone(&world), &cuts, &problem, &rhs_field);
                    let krylov = &krylov;
                    scope.spawn(move || {
                        let owned = GridBox {
                            lo: [0, 0, cuts[rank]],
                            hi: [n, n, cuts[rank + 1]],
                        };
                        let slab = n * n;
                        let cells: Vec<Cell> =
                            problem.cells[cuts[rank] * slab..cuts[rank + 1] * slab].to_vec();
                        let field = &rhs_field[cuts[rank] * slab..cuts[rank + 1] * slab];
                        let (mut setups, mut solves, mut out) = (Vec::new(), Vec::new(), None);
                        for _ in 0..repeats {
                            world.barrier.wait();
                            let t = Instant::now();
                            let comm = Box::new(SlabRank {
                                world: Arc::clone(&world),
                                rank,
                            });
                            let a = DistributedGridPoisson::builder(comm, [n; 3], owned, &cells)
                                .spacing([problem.spacing; 3])
                                .build()
                                .expect("operator");
                            let m = DistributedMultigrid::new(&a, &options()).expect("hierarchy");
                            setups.push(t.elapsed().as_secs_f64());
                            let mut b = vec![0.0; a.dim()];
                            a.gather(field, &mut b).expect("gather");
                            let mut x = vec![0.0; a.dim()];
                            world.barrier.wait();
                            let t = Instant::now();
                            let r = distributed_mgpcg(&a, &m, &b, &mut x, krylov).expect("solve");
                            solves.push(t.elapsed().as_secs_f64());
                            out = Some((r.solve, r.comm));
                        }
                        let (report, comm) = out.expect("ran");
                        (median(setups), median(solves), report, comm)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("rank"))
                .collect()
        })
    };
    let worst = |f: fn(&(f64, f64, SolveReport, CommStats)) -> f64| {
        results.iter().map(f).fold(0.0, f64::max)
    };
    rows.push(Row {
        label: format!("distributed, {ranks} ranks as threads × 1 thread"),
        setup: worst(|r| r.0),
        solve: worst(|r| r.1),
        report: results[0].2.clone(),
        comm: Some(results[0].3),
    });

    println!("{n}³ smoke, rtol 1e-8, medians of {repeats}");
    println!(
        "{:<48} {:>8} {:>8} {:>8} {:>5} {:>10}  comm per iteration (rank 0)",
        "", "setup s", "solve s", "total s", "its", "true ‖r‖"
    );
    for r in &rows {
        let comm = r.comm.map_or(String::new(), |c| {
            let its = r.report.iterations.max(1) as f64;
            format!(
                "{:.2} allreduces, {:.1} exchanges, {:.1} messages, {:.0} bytes",
                c.allreduces as f64 / its,
                c.exchanges as f64 / its,
                c.messages as f64 / its,
                c.bytes as f64 / its
            )
        });
        println!(
            "{:<48} {:>8.3} {:>8.3} {:>8.3} {:>5} {:>10.2e}  {comm}",
            r.label,
            r.setup,
            r.solve,
            r.setup + r.solve,
            r.report.iterations,
            r.report.true_residual_norm
        );
    }
    let total = |r: &Row| r.setup + r.solve;
    println!(
        "ratios (total time): single-reduction / serial {:.2}, distributed 1 rank / serial {:.2}, {ranks} ranks / distributed 1 rank {:.2}, {ranks} ranks / serial {:.2}",
        total(&rows[1]) / total(&rows[0]),
        total(&rows[2]) / total(&rows[0]),
        total(&rows[3]) / total(&rows[2]),
        total(&rows[3]) / total(&rows[0]),
    );
}
