//! The board's image store: content-addressed, shared between images, changed atomically.
//!
//! ```text
//! STATE/images/layers/<diff_id hex>/   one unpacked layer, shared by every image that has it
//! STATE/images/blobs/sha256/<hex>      manifests and configs, kept for inspection and pinning
//! STATE/images/records/<hex of name>.json   one image: name, digests, platform, layers, config
//! STATE/images/tmp/                    work in progress; emptied when the store opens
//! ```
//!
//! An import unpacks into `tmp/` and publishes each layer with one rename, then writes the
//! record last, so an import cut off at any point leaves no half image: at worst an unused
//! whole layer, which the next import of that layer reuses.

mod error;
mod layer;
mod pull;
mod source;

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use bramble_common::image_ref::ImageRef;
use bramble_common::platform::Platform;
use serde::{Deserialize, Serialize};

pub use error::ImageError;
pub use layer::hex;
pub use pull::{Progress, PullOptions, Pulled};

use crate::fsutil::write_atomic;

/// How the image says to run it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunConfig {
    #[serde(default)]
    pub entrypoint: Vec<String>,
    #[serde(default)]
    pub cmd: Vec<String>,
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
}

/// One stored image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Normalized: `docker.io/library/busybox:latest`.
    pub name: String,
    /// The manifest's digest where the image came with one (OCI layouts and archives).
    pub manifest_digest: Option<String>,
    /// The multi-arch index it was pulled through: what a tag names and a pin records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_digest: Option<String>,
    /// The config's digest: the image's identity, as Docker's image ID.
    pub config_digest: String,
    pub platform: Platform,
    /// `diff_id`s, bottom layer first.
    pub layers: Vec<String>,
    pub run: RunConfig,
}

/// The hex part of a `sha256:HEX` digest, if it is one.
pub use bramble_common::image_ref::sha256_hex as hex_of;

#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
}

impl ImageStore {
    /// Opens (creating if needed) the store under `state_dir`, discarding unfinished work.
    pub fn open(state_dir: &Path) -> Result<ImageStore, ImageError> {
        let root = state_dir.join("images");
        for dir in ["layers", "blobs/sha256", "records", "tmp"] {
            let path = root.join(dir);
            fs::create_dir_all(&path).map_err(ImageError::io(&path))?;
        }
        let tmp = root.join("tmp");
        for entry in fs::read_dir(&tmp).map_err(ImageError::io(&tmp))? {
            let path = entry.map_err(ImageError::io(&tmp))?.path();
            let removed = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
            removed.map_err(ImageError::io(&path))?;
        }
        Ok(ImageStore { root })
    }

    /// The unpacked directory of a layer, by `diff_id`.
    pub fn layer_dir(&self, diff_id: &str) -> Option<PathBuf> {
        hex_of(diff_id).map(|hex| self.root.join("layers").join(hex))
    }

    /// The unpacked directories of an image's layers, bottom first, each checked to exist.
    pub fn layer_dirs(&self, record: &ImageRecord) -> Result<Vec<PathBuf>, ImageError> {
        record
            .layers
            .iter()
            .map(|diff_id| {
                self.layer_dir(diff_id).filter(|dir| dir.is_dir()).ok_or_else(|| ImageError::MissingLayer {
                    image: record.name.clone(),
                    diff_id: diff_id.clone(),
                })
            })
            .collect()
    }

    /// Imports the image for `board` from an OCI layout directory, an OCI archive or a
    /// `docker save` archive. `name` overrides the name the source gives.
    pub fn import(
        &self,
        path: &Path,
        name: Option<&str>,
        board: &Platform,
    ) -> Result<ImageRecord, ImageError> {
        self.import_as(path, name, board, None)
    }

    /// Stores what a pull fetched into the OCI layout `layout`.
    fn import_pulled(
        &self,
        layout: &Path,
        name: &str,
        board: &Platform,
        index_digest: Option<String>,
    ) -> Result<ImageRecord, ImageError> {
        self.import_as(layout, Some(name), board, index_digest)
    }

    fn import_as(
        &self,
        path: &Path,
        name: Option<&str>,
        board: &Platform,
        index_digest: Option<String>,
    ) -> Result<ImageRecord, ImageError> {
        let shown = path.display().to_string();
        let work = tempfile::Builder::new()
            .prefix("import-")
            .tempdir_in(self.root.join("tmp"))
            .map_err(ImageError::io(self.root.join("tmp")))?;
        let dir = if fs::metadata(path).map_err(ImageError::io(path))?.is_dir() {
            path.to_path_buf()
        } else {
            let unpacked = work.path().join("archive");
            fs::create_dir(&unpacked).map_err(ImageError::io(&unpacked))?;
            source::extract_archive(path, &unpacked)?;
            unpacked
        };
        let found = source::find(&dir, &shown, name, board)?;
        for layer in &found.layers {
            self.add_layer(layer, work.path())?;
        }
        self.write_blob(&found.config_digest, &found.config_bytes)?;
        let record = ImageRecord {
            name: found.name.to_string(),
            manifest_digest: found.manifest_digest,
            index_digest,
            config_digest: found.config_digest,
            platform: found.platform,
            layers: found.layers.iter().map(|l| l.expected.diff_id.clone()).collect(),
            run: found.run,
        };
        let bytes =
            serde_json::to_vec_pretty(&record).expect("an image record is plain data and always serializes");
        let path = self.record_path(&record.name);
        write_atomic(&path, &bytes).map_err(ImageError::io(&path))?;
        Ok(record)
    }

    fn add_layer(&self, layer: &source::LayerSource, work: &Path) -> Result<(), ImageError> {
        let diff_id = &layer.expected.diff_id;
        let Some(final_dir) = self.layer_dir(diff_id) else {
            return Err(ImageError::CorruptLayer {
                digest: layer.expected.label().to_owned(),
                reason: format!("unsupported diff_id {diff_id:?}"),
            });
        };
        if final_dir.is_dir() {
            return Ok(()); // shared with an image imported before
        }
        if !layer.path.is_file() {
            return Err(ImageError::MissingBlob {
                what: "layer",
                digest: layer.expected.label().to_owned(),
                source_name: layer.source_name.clone(),
            });
        }
        let staging = work.join(format!("layer-{}", hex_of(diff_id).unwrap_or_default()));
        fs::create_dir(&staging).map_err(ImageError::io(&staging))?;
        let file = File::open(&layer.path).map_err(ImageError::io(&layer.path))?;
        layer::unpack(file, &layer.expected, &staging)?;
        // Make the layer durable before it becomes visible.
        let dir = File::open(&staging).map_err(ImageError::io(&staging))?;
        nix::unistd::syncfs(std::os::fd::AsRawFd::as_raw_fd(&dir))
            .map_err(|e| ImageError::io(&staging)(e.into()))?;
        match fs::rename(&staging, &final_dir) {
            Ok(()) => Ok(()),
            // Another import published the same layer meanwhile: theirs is as good as ours.
            Err(_) if final_dir.is_dir() => Ok(()),
            Err(e) => Err(ImageError::io(&final_dir)(e)),
        }
    }

    fn write_blob(&self, digest: &str, bytes: &[u8]) -> Result<(), ImageError> {
        let Some(hex) = hex_of(digest) else { return Ok(()) };
        let path = self.root.join("blobs/sha256").join(hex);
        write_atomic(&path, bytes).map_err(ImageError::io(&path))?;
        Ok(())
    }

    fn record_path(&self, name: &str) -> PathBuf {
        use sha2::{Digest, Sha256};
        self.root.join("records").join(format!("{}.json", hex(&Sha256::digest(name.as_bytes()))))
    }

    /// Every stored image, by name.
    pub fn list(&self) -> Result<Vec<ImageRecord>, ImageError> {
        let dir = self.root.join("records");
        let mut records = Vec::new();
        for entry in fs::read_dir(&dir).map_err(ImageError::io(&dir))? {
            let path = entry.map_err(ImageError::io(&dir))?.path();
            if path.extension().is_some_and(|e| e == "json") {
                records.push(self.read_record(&path)?);
            }
        }
        records.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(records)
    }

    fn read_record(&self, path: &Path) -> Result<ImageRecord, ImageError> {
        let bytes = fs::read(path).map_err(ImageError::io(path))?;
        serde_json::from_slice(&bytes).map_err(|e| ImageError::InvalidDocument {
            source_name: path.display().to_string(),
            what: "image record",
            reason: e.to_string(),
        })
    }

    /// The image a pod's `image:` names (`busybox`, `busybox:latest`, …), if stored. A
    /// reference with a digest matches the manifest or config digest.
    pub fn get(&self, reference: &str) -> Result<Option<ImageRecord>, ImageError> {
        let wanted = ImageRef::parse(reference)?;
        if let Some(digest) = &wanted.digest {
            let repository = wanted.repository();
            return Ok(self.list()?.into_iter().find(|r| {
                let same_repo = ImageRef::parse(&r.name).is_ok_and(|n| n.repository() == repository);
                same_repo
                    && (r.manifest_digest.as_deref() == Some(digest.as_str())
                        || r.index_digest.as_deref() == Some(digest.as_str())
                        || r.config_digest == *digest)
            }));
        }
        let path = self.record_path(&wanted.to_string());
        if !path.is_file() {
            return Ok(None);
        }
        self.read_record(&path).map(Some)
    }

    /// Removes an image, and the layers no other image uses.
    pub fn remove(&self, reference: &str) -> Result<ImageRecord, ImageError> {
        let record = self.get(reference)?.ok_or_else(|| ImageError::NotFound(reference.to_owned()))?;
        let path = self.record_path(&record.name);
        fs::remove_file(&path).map_err(ImageError::io(&path))?;
        let still_used: Vec<String> = self.list()?.into_iter().flat_map(|r| r.layers).collect();
        for diff_id in record.layers.iter().filter(|l| !still_used.contains(l)) {
            if let Some(dir) = self.layer_dir(diff_id) {
                // Move aside first so a half-removed layer is never mistaken for a whole one.
                let doomed =
                    self.root.join("tmp").join(format!("remove-{}", hex_of(diff_id).unwrap_or_default()));
                if fs::rename(&dir, &doomed).is_ok() {
                    fs::remove_dir_all(&doomed).map_err(ImageError::io(&doomed))?;
                }
            }
        }
        Ok(record)
    }
}
