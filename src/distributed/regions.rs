//! The fluid regions enclosed by walls (no air cell) of a distributed
//! grid, on which A is singular with the constant as null vector.
//!
//! Each rank takes the connected components of its own fluid cells from
//! the enclosed regions of its local grid (box and ghost layer), labels
//! each with its smallest
//! global cell index and whether it touches air, then exchanges labels
//! with its face neighbours until no label changes on any rank: every
//! component then carries its global region's label. Enclosed regions
//! inside one box are handled by that rank alone; those that cross boxes
//! are numbered over all ranks, and their sums are one reduction.

use super::comm::Collective;
use super::decomposition::{Decomposition, GridBox};
use super::ghosts::GhostLayer;
use crate::error::{Error, Result};
use crate::operator::{cell_coords, Cell, GridPoisson, INCONSISTENCY_RTOL};
use std::collections::HashMap;

/// No enclosed region.
const NONE: u32 = u32::MAX;

/// The enclosed regions met by this rank's unknowns.
#[derive(Debug, Clone)]
pub(crate) struct Regions {
    /// Per owned unknown: its region (local ones first, then shared ones
    /// by their global number), or [`NONE`].
    region: Vec<u32>,
    /// Cells of each local region.
    local_sizes: Vec<usize>,
    /// Cells of each shared region, over all ranks.
    shared_sizes: Vec<f64>,
    /// Some rank has an enclosed region.
    any: bool,
    /// Global coordinates of a cell of each region this rank meets.
    first_cell: Vec<[usize; 3]>,
}

impl Regions {
    /// Finds the regions (collective). `local` is the grid of the extended
    /// box, `owned_unknowns` its unknown of each owned unknown, `ghosts` its
    /// ghost layer.
    pub(crate) fn find(
        collective: &Collective,
        decomposition: &Decomposition,
        local: &GridPoisson,
        owned_unknowns: &[u32],
        ghosts: &GhostLayer,
    ) -> Self {
        let (owned, extended) = (decomposition.owned(), decomposition.extended());
        let dims = decomposition.dims;
        let n = owned_unknowns.len();
        let cell_of = |e: u32| extended.coords(local.cells_of_unknowns()[e as usize] as usize);
        let global_index = |c: [usize; 3]| (c[0] + dims[0] * (c[1] + dims[1] * c[2])) as f64;
        // The owned unknowns of one enclosed region of the local grid (box
        // and ghost layer; a region of it that touches air lies in a
        // region that does) are one component: each is joined to the
        // region's first, its root. Air never neighbours an enclosed
        // region, so only a cell on the box's faces has more to note: its
        // neighbours in the ghost layer, linked to their boxes' components.
        let mut root_of: Vec<u32> = (0..n as u32).collect();
        let mut first_owned = vec![NONE; local.num_enclosed_regions()];
        // A component with air needs no label (it is never numbered); one
        // of the local grid's enclosed regions has no air to begin with.
        let mut air = vec![false; n];
        for (o, &e) in owned_unknowns.iter().enumerate() {
            match local.enclosed_region(e as usize) {
                None => air[o] = true,
                Some(k) => {
                    if first_owned[k] == NONE {
                        first_owned[k] = o as u32;
                    }
                    root_of[o] = first_owned[k];
                }
            }
        }
        // The links of the owned cells of enclosed regions on each side of
        // the box that faces a neighbour's box.
        let mut ghost_links: Vec<(u32, u32)> = Vec::new();
        decomposition.for_each_ghost_face(|c, g, _| {
            let (cell, ghost) = (extended.index(c), extended.index(g));
            let Some(e) = local.unknown_of_cell(cell) else {
                return;
            };
            if local.enclosed_region(e).is_some() && local.cell(ghost) == Cell::Fluid {
                let ne = local.unknown_of_cell(ghost).expect("fluid");
                ghost_links.push((ghosts.entry[e], ghosts.entry[ne]));
            }
        });
        // Per component (indexed by its root, its first unknown in owned
        // cell order, whose global index is the component's smallest):
        // label, air, crosses a box.
        let mut label = vec![0.0; n];
        for &root in first_owned.iter().filter(|&&root| root != NONE) {
            label[root as usize] = global_index(cell_of(owned_unknowns[root as usize]));
        }
        let mut shared = vec![false; n];
        for &(o, _) in &ghost_links {
            let root = root_of[o as usize] as usize;
            shared[root] = true;
        }
        // Propagate (label, air) across boxes until nothing changes; the
        // neighbours read only the entries this rank sends.
        let sent: Vec<u32> = ghosts.halo.sent_entries().collect();
        let (mut values, mut ghost_values) = (vec![0.0f64; n], vec![0.0f64; ghosts.len]);
        loop {
            for &o in &sent {
                let root = root_of[o as usize] as usize;
                values[o as usize] = 2.0 * label[root] + f64::from(u8::from(air[root]));
            }
            ghosts
                .halo
                .exchange_into(collective, &values, &mut ghost_values);
            let mut changed = 0.0;
            for &(o, g) in &ghost_links {
                let root = root_of[o as usize] as usize;
                let v = ghost_values[g as usize];
                let (their_label, their_air) = ((v / 2.0).floor(), v % 2.0 == 1.0);
                if their_label < label[root] || (their_air && !air[root]) {
                    label[root] = label[root].min(their_label);
                    air[root] |= their_air;
                    changed = 1.0;
                }
            }
            let mut flags = [changed, if collective.failed() { 1.0 } else { 0.0 }];
            collective.allreduce(&mut flags);
            if flags[0] == 0.0 || flags[1] != 0.0 {
                break;
            }
        }
        // Number the regions: local ones here, shared ones by the rank
        // owning the region's labelled cell.
        let mut region = vec![NONE; n];
        let mut local_sizes = Vec::new();
        let mut first_cell = Vec::new();
        let mut local_of_root: HashMap<usize, u32> = HashMap::new();
        let mut my_shared: Vec<f64> = Vec::new();
        for o in 0..n {
            let root = root_of[o] as usize;
            if air[root] {
                continue;
            }
            if shared[root] {
                let l = label[root];
                let c = cell_coords(l as usize, dims);
                if owns(&owned, c) && !my_shared.contains(&l) {
                    my_shared.push(l);
                }
            } else {
                let next = local_of_root.len() as u32;
                let k = *local_of_root.entry(root).or_insert_with(|| {
                    local_sizes.push(0);
                    first_cell.push(cell_of(owned_unknowns[o]));
                    next
                });
                local_sizes[k as usize] += 1;
                region[o] = k;
            }
        }
        my_shared.sort_by(f64::total_cmp);
        let size = collective.size();
        let mut counts = vec![0.0; size + 1];
        counts[collective.rank()] = my_shared.len() as f64;
        counts[size] = local_sizes.len() as f64;
        collective.allreduce(&mut counts);
        let total = counts[..size].iter().sum::<f64>() as usize;
        let offset = counts[..collective.rank()].iter().sum::<f64>() as usize;
        let mut labels = vec![0.0; total];
        labels[offset..offset + my_shared.len()].copy_from_slice(&my_shared);
        collective.allreduce(&mut labels);
        let number: HashMap<u64, u32> = labels
            .iter()
            .enumerate()
            .map(|(j, &l)| (l as u64, j as u32))
            .collect();
        let num_local = local_sizes.len() as u32;
        let mut shared_sizes = vec![0.0; total];
        for (o, region) in region.iter_mut().enumerate() {
            let root = root_of[o] as usize;
            if !air[root] && shared[root] {
                if let Some(&j) = number.get(&(label[root] as u64)) {
                    *region = num_local + j;
                    shared_sizes[j as usize] += 1.0;
                }
            }
        }
        collective.allreduce(&mut shared_sizes);
        first_cell.extend(labels.iter().map(|&l| cell_coords(l as usize, dims)));
        Regions {
            region,
            local_sizes,
            shared_sizes,
            any: counts[size] > 0.0 || total > 0,
            first_cell,
        }
    }

    /// `true` when some rank has an enclosed region (the same on every rank).
    pub(crate) fn any(&self) -> bool {
        self.any
    }

    /// Per region its sum of v (local ones from this rank, shared ones over
    /// all ranks), and the squared norm Σ_k s_k²/|k| of the null-space
    /// component over all ranks; with `extra` values summed in the same
    /// reduction.
    fn sums(&self, collective: &Collective, v: &[f64], extra: &mut [f64]) -> (Vec<f64>, f64) {
        let num_local = self.local_sizes.len();
        let mut sums = vec![0.0; num_local + self.shared_sizes.len()];
        for (&r, &vu) in self.region.iter().zip(v) {
            if r != NONE {
                sums[r as usize] += vu;
            }
        }
        let local_norm2: f64 = sums[..num_local]
            .iter()
            .zip(&self.local_sizes)
            .map(|(s, &m)| s * s / m as f64)
            .sum();
        let mut reduced: Vec<f64> = sums[num_local..].to_vec();
        reduced.push(local_norm2);
        reduced.extend_from_slice(extra);
        collective.allreduce(&mut reduced);
        let count = self.shared_sizes.len();
        sums[num_local..].copy_from_slice(&reduced[..count]);
        extra.copy_from_slice(&reduced[count + 1..]);
        let shared_norm2: f64 = reduced[..count]
            .iter()
            .zip(&self.shared_sizes)
            .map(|(s, m)| s * s / m)
            .sum();
        (sums, reduced[count] + shared_norm2)
    }

    /// v ← v − Σ_k (1_kᵀv / |k|) 1_k over the enclosed regions (collective);
    /// returns the norm of the removed component.
    pub(crate) fn remove(&self, collective: &Collective, v: &mut [f64]) -> f64 {
        if !self.any {
            return 0.0;
        }
        let (mut means, norm2) = self.sums(collective, v, &mut []);
        for (mean, size) in means.iter_mut().zip(
            self.local_sizes
                .iter()
                .map(|&m| m as f64)
                .chain(self.shared_sizes.iter().copied()),
        ) {
            *mean /= size;
        }
        for (vu, &r) in v.iter_mut().zip(&self.region) {
            if r != NONE {
                *vu -= means[r as usize];
            }
        }
        norm2.sqrt()
    }

    /// An error when b's null-space component is more than rounding
    /// (collective; the same verdict on every rank).
    pub(crate) fn check_consistent(&self, collective: &Collective, b: &[f64]) -> Result<()> {
        if !self.any {
            return Ok(());
        }
        let mut b_norm2 = [crate::vector::dot(b, b)];
        let (sums, norm2) = self.sums(collective, b, &mut b_norm2);
        let (norm, threshold) = (norm2.sqrt(), INCONSISTENCY_RTOL * b_norm2[0].sqrt());
        if norm <= threshold {
            return Ok(());
        }
        let sizes = self
            .local_sizes
            .iter()
            .map(|&m| m as f64)
            .chain(self.shared_sizes.iter().copied());
        let worst = sums
            .iter()
            .zip(sizes)
            .map(|(s, m)| s.abs() / m.sqrt())
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(k, _)| self.first_cell[k]);
        Err(Error::invalid(
            "b",
            format!(
                "the right-hand side is inconsistent: A is singular on the fluid regions that touch no air cell{}, \
                 and the null-space component of b has norm {norm:.3e} > {INCONSISTENCY_RTOL:e}·‖b‖ = {threshold:.3e} \
                 over all ranks (remove the mean of b over each such region, or add an air cell)",
                worst.map_or(String::new(), |c| format!(" (among them the one containing cell {c:?})"))
            ),
        ))
    }
}

fn owns(b: &GridBox, c: [usize; 3]) -> bool {
    (0..3).all(|a| b.lo[a] <= c[a] && c[a] < b.hi[a])
}
