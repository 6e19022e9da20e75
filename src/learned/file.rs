//! The safetensors plumbing shared by the model files: reading and writing
//! the bytes, the metadata map, and the format error.

use crate::error::{Error, Result};
use safetensors::tensor::TensorView;
use safetensors::SafeTensors;
use std::collections::HashMap;
use std::path::Path;

/// An [`Error::Format`] with `message`.
pub(crate) fn format_error(message: impl Into<String>) -> Error {
    Error::Format {
        message: message.into(),
    }
}

/// The bytes of the file at `path` ([`Error::Io`] when unreadable).
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Writes `bytes` to `path` ([`Error::Io`] when it cannot).
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| Error::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// The metadata of a safetensors file.
pub(crate) fn metadata(bytes: &[u8]) -> Result<HashMap<String, String>> {
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| {
        format_error(format!(
            "not a valid safetensors file (truncated or corrupted): {e}"
        ))
    })?;
    header
        .metadata()
        .clone()
        .ok_or_else(|| format_error("no metadata (not an adjunct model)"))
}

/// The metadata of a file whose `format` and `version` must be these.
pub(crate) fn checked_metadata(
    bytes: &[u8],
    format: &str,
    version: &str,
) -> Result<HashMap<String, String>> {
    let meta = metadata(bytes)?;
    if field(&meta, "format")? != format {
        return Err(format_error(format!("metadata `format` is not `{format}`")));
    }
    let found = field(&meta, "version")?;
    if found != version {
        return Err(format_error(format!(
            "version {found} is not supported (expected {version})"
        )));
    }
    Ok(meta)
}

/// The metadata entry `key` ([`Error::Format`] naming it when missing).
pub(crate) fn field(meta: &HashMap<String, String>, key: &str) -> Result<String> {
    meta.get(key)
        .cloned()
        .ok_or_else(|| format_error(format!("metadata `{key}` is missing")))
}

/// The file of `tensors` with `metadata`.
pub(crate) fn serialize(
    tensors: Vec<(String, TensorView<'_>)>,
    metadata: &[(&str, String)],
) -> Result<Vec<u8>> {
    let metadata: HashMap<String, String> = metadata
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    safetensors::serialize(tensors, Some(metadata)).map_err(|e| format_error(e.to_string()))
}
