//! The ghost layer of a rank's local grid seen from its own unknowns:
//! where each local unknown sits among the owned or the ghost ones, the
//! face exchange from an owned vector into the ghost values, and the faces
//! across which the ghost layer couples to the owned unknowns.

use super::decomposition::Decomposition;
use super::halo::Halo;
use crate::operator::{Cell, GridPoisson, LinearOperator};

/// A face that couples an owned unknown to a ghost cell: the owned
/// unknown, the face weight s·β/h², and the ghost cell's entry in the
/// ghost values (None for an air cell, whose value is 0).
#[derive(Debug, Clone, Copy)]
pub(crate) struct GhostFace {
    pub(crate) unknown: u32,
    pub(crate) weight: f64,
    pub(crate) ghost: Option<u32>,
}

/// The ghost layer of a rank's local grid as seen from its own unknowns.
pub(crate) struct GhostLayer {
    /// Per local unknown: its index among the owned unknowns, or among the
    /// ghost unknowns (the local ones that are not owned, in order).
    pub(crate) entry: Vec<u32>,
    /// The face exchange from a vector of the owned unknowns into one of
    /// the ghost unknowns.
    pub(crate) halo: Halo,
    /// The number of ghost unknowns.
    pub(crate) len: usize,
}

impl GhostLayer {
    pub(crate) fn new(
        decomposition: &Decomposition,
        local: &GridPoisson,
        owned_unknowns: &[u32],
    ) -> Self {
        let mut entry = vec![0u32; local.dim()];
        let (mut owned, mut ghost) = (0u32, 0u32);
        for (e, slot) in entry.iter_mut().enumerate() {
            let next = owned_unknowns.get(owned as usize);
            let counter = if next == Some(&(e as u32)) {
                &mut owned
            } else {
                &mut ghost
            };
            *slot = *counter;
            *counter += 1;
        }
        let halo = Halo::new(decomposition, true, |c| {
            local.unknown_of_cell(c).map(|e| entry[e])
        });
        Self {
            entry,
            halo,
            len: ghost as usize,
        }
    }

    /// The faces that couple an owned unknown to a fluid or air ghost cell.
    pub(crate) fn faces(
        &self,
        decomposition: &Decomposition,
        local: &GridPoisson,
    ) -> Vec<GhostFace> {
        let extended = decomposition.extended();
        let mut faces = Vec::new();
        decomposition.for_each_ghost_face(|c, g, a| {
            let (cell, across) = (extended.index(c), extended.index(g));
            let Some(e) = local.unknown_of_cell(cell) else {
                return;
            };
            let weight = local.face_weight(a, cell.min(across));
            let ghost = match local.cell(across) {
                Cell::Solid => return,
                Cell::Air => None,
                Cell::Fluid => local.unknown_of_cell(across).map(|u| self.entry[u]),
            };
            if weight > 0.0 {
                faces.push(GhostFace {
                    unknown: self.entry[e],
                    weight,
                    ghost,
                });
            }
        });
        faces
    }
}
