//! Saving and loading networks in the safetensors format.
//!
//! Tensors `conv{k}.weight` (f32, shape [cout, cin, k, k] in 2D or
//! [cout, cin, k, k, k] in 3D, kernel taps z-major; no biases) for the
//! convolutions in network order; metadata `format =
//! adjunct-cdm`, `version = 1`, `dim`, `channels`, `levels`, `blocks`,
//! `symmetric` and `coarse_block` (both optional: absent means `false` and
//! 0), and free-form `training_grid` and `training_command`.

use super::file::{
    checked_metadata, field, format_error, metadata, read_file, serialize, write_file,
};
use super::multigrid::{self, MultigridModel};
use super::network::{Architecture, Network};
use crate::error::{Error, Result};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use std::path::Path;

const FORMAT: &str = "adjunct-cdm";
const VERSION: &str = "1";

/// A network with the descriptive metadata stored beside it.
#[derive(Debug, Clone)]
pub struct Model {
    /// The network.
    pub network: Network,
    /// Side, in cells, of the aggregates of the two-level correction that
    /// solves apply around the network (see [`super::NetworkDirection`]);
    /// 0 = none.
    pub coarse_block: usize,
    /// Grid size the model was trained on, e.g. "64x64".
    pub training_grid: String,
    /// The command that trained it.
    pub training_command: String,
}

fn tensor_shape(arch: &Architecture, cout: usize, cin: usize, k: usize) -> Vec<usize> {
    let mut shape = vec![cout, cin];
    shape.extend(std::iter::repeat_n(k, arch.dim));
    shape
}

impl Model {
    /// The file's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let net = &self.network;
        let arch = net.architecture();
        let bytes: Vec<u8> = net.params().iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut tensors = Vec::new();
        for (k, c) in net.conv_params().iter().enumerate() {
            let nw = c.shape.weights(arch.dim);
            let w = TensorView::new(
                Dtype::F32,
                tensor_shape(&arch, c.shape.cout, c.shape.cin, c.shape.k),
                &bytes[4 * c.weight..4 * (c.weight + nw)],
            )
            .map_err(|e| format_error(e.to_string()))?;
            tensors.push((format!("conv{k}.weight"), w));
        }
        serialize(
            tensors,
            &[
                ("format", FORMAT.to_string()),
                ("version", VERSION.to_string()),
                ("dim", arch.dim.to_string()),
                ("channels", arch.channels.to_string()),
                ("levels", arch.levels.to_string()),
                ("blocks", arch.blocks.to_string()),
                ("symmetric", arch.symmetric.to_string()),
                ("coarse_block", self.coarse_block.to_string()),
                ("training_grid", self.training_grid.clone()),
                ("training_command", self.training_command.clone()),
            ],
        )
    }

    /// Writes the model to `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        write_file(path, &self.to_bytes()?)
    }

    /// Reads a model from `path`: [`Error::Io`] when it cannot be read,
    /// [`Error::Format`] when it is not a valid model file.
    pub fn load(path: &Path) -> Result<Self> {
        Self::from_bytes(&read_file(path)?)
    }

    /// Parses a model file, validating every tensor's name, dtype and shape.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let meta = checked_metadata(bytes, FORMAT, VERSION)?;
        let get = |key: &str| field(&meta, key);
        let number = |key: &str| -> Result<usize> {
            get(key)?
                .parse()
                .map_err(|_| format_error(format!("metadata `{key}` is not an integer")))
        };
        let arch = Architecture {
            dim: number("dim")?,
            channels: number("channels")?,
            levels: number("levels")?,
            blocks: number("blocks")?,
            // Absent in files written before the symmetric form existed.
            symmetric: match meta.get("symmetric").map(String::as_str) {
                None | Some("false") => false,
                Some("true") => true,
                Some(other) => {
                    return Err(format_error(format!(
                        "metadata `symmetric` is `{other}`, expected `true` or `false`"
                    )))
                }
            },
        };
        // Everything about the file is checked against the architecture
        // before anything is allocated: the architecture's bounds keep the
        // list of expected shapes short, and every expected tensor must be
        // present with exactly that shape, so the parameter vector is never
        // larger than the file itself.
        let (convs, len) = arch
            .layout()
            .map_err(|e| format_error(format!("architecture: {e}")))?;
        let file = SafeTensors::deserialize(bytes)
            .map_err(|e| format_error(format!("corrupted or truncated: {e}")))?;
        if file.len() != convs.len() {
            return Err(format_error(format!(
                "{} tensors, the architecture has {}",
                file.len(),
                convs.len()
            )));
        }
        let mut tensors = Vec::with_capacity(convs.len());
        for (k, c) in convs.iter().enumerate() {
            let name = format!("conv{k}.weight");
            let shape = tensor_shape(&arch, c.shape.cout, c.shape.cin, c.shape.k);
            let t = file
                .tensor(&name)
                .map_err(|_| format_error(format!("tensor `{name}` is missing")))?;
            if t.dtype() != Dtype::F32 {
                return Err(format_error(format!(
                    "tensor `{name}` has dtype {:?}, expected F32",
                    t.dtype()
                )));
            }
            if t.shape() != shape.as_slice() {
                return Err(format_error(format!(
                    "tensor `{name}` has shape {:?}, expected {shape:?}",
                    t.shape()
                )));
            }
            tensors.push(t);
        }
        let mut params = Vec::new();
        params
            .try_reserve_exact(len)
            .map_err(|_| Error::OutOfMemory {
                what: "model parameters",
                elements: len,
            })?;
        for t in &tensors {
            params.extend(
                t.data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            );
        }
        if let Some(i) = params.iter().position(|v| !v.is_finite()) {
            return Err(format_error(format!("parameter {i} is not finite")));
        }
        let network = Network::from_params(arch, params)
            .map_err(|e| format_error(format!("architecture: {e}")))?;
        // Absent in files written before the two-level correction existed.
        let coarse_block = match meta.get("coarse_block") {
            None => 0,
            Some(_) => number("coarse_block")?,
        };
        if coarse_block == 1 {
            return Err(format_error(
                "metadata `coarse_block` is 1 (0 for none, or an aggregate side ≥ 2)",
            ));
        }
        Ok(Self {
            network,
            coarse_block,
            training_grid: meta.get("training_grid").cloned().unwrap_or_default(),
            training_command: meta.get("training_command").cloned().unwrap_or_default(),
        })
    }
}

/// A model file of either kind, told apart by its metadata `format`.
#[derive(Debug, Clone)]
pub enum AnyModel {
    /// A direction network (`format = adjunct-cdm`).
    Directions(Model),
    /// A learned V-cycle schedule (`format = adjunct-multigrid`).
    Multigrid(MultigridModel),
}

impl AnyModel {
    /// Parses a model file of either kind.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        match metadata(bytes)?.get("format").map(String::as_str) {
            Some(FORMAT) => Ok(Self::Directions(Model::from_bytes(bytes)?)),
            Some(multigrid::FORMAT) => Ok(Self::Multigrid(MultigridModel::from_bytes(bytes)?)),
            Some(other) => Err(format_error(format!(
                "metadata `format` is `{other}`, expected `{FORMAT}` or `{}`",
                multigrid::FORMAT
            ))),
            None => Err(format_error("metadata `format` is missing")),
        }
    }

    /// Reads a model file of either kind from `path`.
    pub fn load(path: &Path) -> Result<Self> {
        Self::from_bytes(&read_file(path)?)
    }

    /// The grid dimension (2 or 3) the model serves.
    pub fn dim(&self) -> usize {
        match self {
            Self::Directions(m) => m.network.architecture().dim,
            Self::Multigrid(m) => m.dim,
        }
    }

    /// The kind of component, as the file's metadata names it.
    pub fn component(&self) -> &'static str {
        match self {
            Self::Directions(_) => "directions",
            Self::Multigrid(_) => "smoother-schedule",
        }
    }
}
