//! Errors of the image store, each naming the image, blob or layer at fault.

use std::path::PathBuf;

use bramble_common::image_ref::ImageRefError;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} {digest}: its content hashes to sha256:{actual}; the blob is corrupt")]
    DigestMismatch { what: &'static str, digest: String, actual: String },
    #[error(
        "{what} {digest}: {actual} bytes where the image says {expected}; the blob is truncated or corrupt"
    )]
    SizeMismatch { what: &'static str, digest: String, expected: u64, actual: u64 },
    #[error("{what} {digest}: missing from {source_name}")]
    MissingBlob { what: &'static str, digest: String, source_name: String },
    #[error("layer {digest}: {reason}")]
    CorruptLayer { digest: String, reason: String },
    #[error("layer {digest}: media type {media_type} is not supported (gzip or uncompressed tar only)")]
    UnsupportedLayer { digest: String, media_type: String },
    #[error("{source_name}: invalid {what}: {reason}")]
    InvalidDocument { source_name: String, what: &'static str, reason: String },
    #[error(
        "{0}: not an OCI image layout, OCI archive or docker save archive (no index.json or manifest.json)"
    )]
    UnknownFormat(String),
    #[error("{source_name}: no image for {wanted}; it has {available}")]
    NoPlatform { source_name: String, wanted: String, available: String },
    #[error("{source_name}: the archive does not name its image{}; give one with --name", tag.as_ref().map(|t| format!(" (only the tag {t:?})")).unwrap_or_default())]
    NoName { source_name: String, tag: Option<String> },
    #[error("{source_name}: holds {count} images; name the one to import with --name")]
    Ambiguous { source_name: String, count: usize },
    #[error(transparent)]
    Reference(#[from] ImageRefError),
    #[error("image {image}: layer {diff_id} is missing from the store")]
    MissingLayer { image: String, diff_id: String },
    #[error("no image {0} in the store")]
    NotFound(String),
    #[error("pull {reference}: {reason}")]
    Registry { reference: String, reason: String },
}

impl ImageError {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ImageError {
        let path = path.into();
        move |source| ImageError::Io { path, source }
    }
}
