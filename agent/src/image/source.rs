//! Reading an image out of what a user hands over: an OCI image layout directory, an OCI
//! archive, or a `docker save` archive (as Docker, skopeo and containerd write them).
//!
//! The result is a [`Found`] image: its name (from the archive, unless overridden), platform,
//! run configuration and the layers to unpack. Every small blob read here is verified by digest
//! and size; layers are verified later, while they are unpacked.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use bramble_common::image_ref::{ImageRef, is_full_reference};
use bramble_common::platform::Platform;
use serde::Deserialize;

use super::error::ImageError;
use super::layer::{ExpectedLayer, digest_of};
use super::{RunConfig, hex_of};

/// Largest manifest, index or config read (real ones are a few KiB).
const MAX_DOCUMENT_BYTES: u64 = 4 << 20;

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    platform: Option<DescriptorPlatform>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
struct DescriptorPlatform {
    architecture: String,
    os: String,
    #[serde(default)]
    variant: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Index {
    manifests: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    config: Descriptor,
    layers: Vec<Descriptor>,
}

/// The parts of an image config (OCI or Docker) that Bramble uses.
#[derive(Debug, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    variant: Option<String>,
    #[serde(default)]
    config: Option<ProcessConfig>,
    rootfs: RootFs,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ProcessConfig {
    #[serde(default)]
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    working_dir: Option<String>,
    #[serde(default)]
    user: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RootFs {
    diff_ids: Vec<String>,
}

/// A layer to unpack: where its bytes are and what they must be. The blob may be absent when
/// the store has the layer already (a pull fetches only the layers it lacks).
#[derive(Debug, Clone)]
pub struct LayerSource {
    pub path: PathBuf,
    pub expected: ExpectedLayer,
    /// The source, for the error if the blob is needed and absent.
    pub source_name: String,
}

/// An image found in a source, ready to be stored.
#[derive(Debug)]
pub struct Found {
    pub name: ImageRef,
    /// The manifest's digest, for OCI sources (a `docker save` archive has none).
    pub manifest_digest: Option<String>,
    pub config_digest: String,
    pub config_bytes: Vec<u8>,
    pub platform: Platform,
    pub run: RunConfig,
    pub layers: Vec<LayerSource>,
}

/// Reads the image for `board` out of an unpacked source directory.
pub fn find(dir: &Path, shown: &str, name: Option<&str>, board: &Platform) -> Result<Found, ImageError> {
    if dir.join("index.json").is_file() {
        // Docker 25+ writes an OCI layout with a manifest.json beside it: its RepoTags still name the image.
        let docker_name = docker_repo_tag(dir, shown)?;
        find_oci(dir, shown, name.or(docker_name.as_deref()), board)
    } else if dir.join("manifest.json").is_file() {
        find_docker(dir, shown, name, board)
    } else {
        Err(ImageError::UnknownFormat(shown.to_owned()))
    }
}

fn find_oci(dir: &Path, shown: &str, name: Option<&str>, board: &Platform) -> Result<Found, ImageError> {
    let index: Index = read_json(&dir.join("index.json"), shown, "index.json")?;
    let mut candidates = index.manifests;
    // Name the image: --name, else what the layout's own annotations say.
    let tagged: Vec<&Descriptor> = candidates
        .iter()
        .filter(|d| d.annotations.contains_key(REF_NAME) || d.annotations.contains_key(CONTAINERD_NAME))
        .collect();
    let (entry_name, tag) = match tagged.as_slice() {
        [one] => (
            one.annotations
                .get(CONTAINERD_NAME)
                .cloned()
                .or_else(|| one.annotations.get(REF_NAME).filter(|r| is_full_reference(r)).cloned()),
            one.annotations.get(REF_NAME).cloned(),
        ),
        _ => (None, None),
    };
    if tagged.len() > 1 && candidates.iter().all(|d| d.platform.is_none()) {
        // Several named images and no platforms: pick by --name.
        let Some(wanted) = name else {
            return Err(ImageError::Ambiguous { source_name: shown.to_owned(), count: tagged.len() });
        };
        let wanted_ref = ImageRef::parse(wanted)?;
        candidates.retain(|d| {
            d.annotations.values().any(|v| ImageRef::parse(v).is_ok_and(|r| r == wanted_ref) || v == wanted)
        });
    }
    let name = match name.map(str::to_owned).or(entry_name) {
        Some(n) => ImageRef::parse(&n)?,
        None => return Err(ImageError::NoName { source_name: shown.to_owned(), tag }),
    };
    // Follow nested indexes down to the manifests, then choose the board's platform.
    let mut manifests = Vec::new();
    let mut pending = candidates;
    let mut depth = 0;
    while let Some(d) = pending.pop() {
        if d.media_type.contains("index") || d.media_type.contains("manifest.list") {
            depth += 1;
            if depth > 8 {
                return Err(invalid(shown, "index.json", "indexes nest too deeply".to_owned()));
            }
            let nested: Index = read_blob_json(dir, shown, "image index", &d)?;
            pending.extend(nested.manifests);
        } else {
            manifests.push(d);
        }
    }
    let (manifest_desc, loaded) = choose_platform(dir, shown, board, manifests)?;
    let (manifest, config_bytes, config) = match loaded {
        Some(loaded) => loaded,
        None => load_manifest(dir, shown, &manifest_desc)?,
    };
    check_layer_count(shown, "manifest", manifest.layers.len(), &config)?;
    let mut layers = Vec::new();
    for (desc, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
        if desc.media_type.contains("zstd") {
            return Err(ImageError::UnsupportedLayer {
                digest: desc.digest.clone(),
                media_type: desc.media_type.clone(),
            });
        }
        let path = blob_path(dir, &desc.digest, shown)?;
        let expected = ExpectedLayer {
            digest: Some(desc.digest.clone()),
            size: Some(desc.size),
            diff_id: diff_id.clone(),
        };
        layers.push(LayerSource { path, expected, source_name: shown.to_owned() });
    }
    Ok(Found {
        name,
        manifest_digest: Some(manifest_desc.digest.clone()),
        config_digest: manifest.config.digest.clone(),
        platform: config_platform(&config),
        run: run_config(config.config),
        config_bytes,
        layers,
    })
}

/// The manifest whose platform suits the board best.
/// A manifest, its config's bytes and the config they parse to.
type LoadedManifest = (Manifest, Vec<u8>, ImageConfig);

fn load_manifest(dir: &Path, shown: &str, d: &Descriptor) -> Result<LoadedManifest, ImageError> {
    let manifest: Manifest = read_blob_json(dir, shown, "manifest", d)?;
    let config_bytes = read_blob(dir, shown, "config", &manifest.config)?;
    let config: ImageConfig = parse_json(&config_bytes, shown, "image config")?;
    Ok((manifest, config_bytes, config))
}

/// The manifest for the board, with what was loaded of it already (when its config had to be
/// read to learn its platform).
fn choose_platform(
    dir: &Path,
    shown: &str,
    board: &Platform,
    manifests: Vec<Descriptor>,
) -> Result<(Descriptor, Option<LoadedManifest>), ImageError> {
    let mut best: Option<(u32, Descriptor, Option<LoadedManifest>)> = None;
    let mut seen = Vec::new();
    for d in manifests {
        let (platform, loaded) = match &d.platform {
            Some(p) => (Platform::new(&p.os, &p.architecture, p.variant.as_deref()), None),
            None => {
                // A single-platform image: its config says the platform.
                let loaded = load_manifest(dir, shown, &d)?;
                (config_platform(&loaded.2), Some(loaded))
            }
        };
        if let Some(score) = board.preference(&platform)
            && best.as_ref().is_none_or(|(s, _, _)| score < *s)
        {
            best = Some((score, d, loaded));
            continue;
        }
        seen.push(platform.to_string());
    }
    match best {
        Some((_, d, loaded)) => Ok((d, loaded)),
        None => Err(ImageError::NoPlatform {
            source_name: shown.to_owned(),
            wanted: board.to_string(),
            available: if seen.is_empty() { "no images".to_owned() } else { seen.join(", ") },
        }),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn docker_repo_tag(dir: &Path, shown: &str) -> Result<Option<String>, ImageError> {
    let path = dir.join("manifest.json");
    if !path.is_file() {
        return Ok(None);
    }
    let entries: Vec<DockerEntry> = read_json(&path, shown, "manifest.json")?;
    Ok(match entries.as_slice() {
        [one] => one.repo_tags.as_ref().and_then(|t| t.first().cloned()),
        _ => None,
    })
}

fn find_docker(dir: &Path, shown: &str, name: Option<&str>, board: &Platform) -> Result<Found, ImageError> {
    let entries: Vec<DockerEntry> = read_json(&dir.join("manifest.json"), shown, "manifest.json")?;
    let entry = match (entries.len(), name) {
        (0, _) => return Err(invalid(shown, "manifest.json", "it lists no images".to_owned())),
        (1, _) => &entries[0],
        (n, None) => return Err(ImageError::Ambiguous { source_name: shown.to_owned(), count: n }),
        (_, Some(wanted)) => {
            let wanted_ref = ImageRef::parse(wanted)?;
            entries
                .iter()
                .find(|e| {
                    e.repo_tags.iter().flatten().any(|t| ImageRef::parse(t).is_ok_and(|r| r == wanted_ref))
                })
                .ok_or_else(|| ImageError::NotFound(format!("{wanted_ref} in {shown}")))?
        }
    };
    let name =
        match name.map(str::to_owned).or_else(|| entry.repo_tags.as_ref().and_then(|t| t.first().cloned())) {
            Some(n) => ImageRef::parse(&n)?,
            None => return Err(ImageError::NoName { source_name: shown.to_owned(), tag: None }),
        };
    let config_path = inside(dir, &entry.config, shown)?;
    let config_bytes = read_limited(&config_path, shown)?;
    let (config_digest, _) = digest_of(&config_bytes[..]).map_err(ImageError::io(&config_path))?;
    // Docker names the config file by its digest: check it where it does.
    let stem = Path::new(&entry.config).file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    if stem.len() == 64 && format!("sha256:{stem}") != config_digest {
        let actual = config_digest.trim_start_matches("sha256:").to_owned();
        return Err(ImageError::DigestMismatch { what: "config", digest: format!("sha256:{stem}"), actual });
    }
    let config: ImageConfig = parse_json(&config_bytes, shown, "image config")?;
    let platform = config_platform(&config);
    if board.preference(&platform).is_none() {
        return Err(ImageError::NoPlatform {
            source_name: shown.to_owned(),
            wanted: board.to_string(),
            available: platform.to_string(),
        });
    }
    check_layer_count(shown, "manifest.json", entry.layers.len(), &config)?;
    let mut layers = Vec::new();
    for (file, diff_id) in entry.layers.iter().zip(&config.rootfs.diff_ids) {
        let path = existing(inside(dir, file, shown)?, "layer", diff_id, shown)?;
        // Docker names no stored digest: the diff_id (vouched for by the config's digest) is
        // checked while unpacking, gzipped or not.
        let expected = ExpectedLayer { digest: None, size: None, diff_id: diff_id.clone() };
        layers.push(LayerSource { path, expected, source_name: shown.to_owned() });
    }
    Ok(Found {
        name,
        manifest_digest: None,
        config_digest,
        config_bytes,
        platform,
        run: run_config(config.config),
        layers,
    })
}

/// Every layer needs its diff_id in the config, which is how its content is verified.
fn check_layer_count(
    shown: &str,
    what: &'static str,
    layers: usize,
    config: &ImageConfig,
) -> Result<(), ImageError> {
    let diff_ids = config.rootfs.diff_ids.len();
    if layers == diff_ids {
        return Ok(());
    }
    Err(invalid(shown, what, format!("{layers} layers but {diff_ids} diff_ids in the config")))
}

fn config_platform(config: &ImageConfig) -> Platform {
    let os = if config.os.is_empty() { "linux" } else { &config.os };
    Platform::new(os, &config.architecture, config.variant.as_deref())
}

fn run_config(config: Option<ProcessConfig>) -> RunConfig {
    let c = config.unwrap_or_default();
    RunConfig {
        entrypoint: c.entrypoint.unwrap_or_default(),
        cmd: c.cmd.unwrap_or_default(),
        env: c.env.unwrap_or_default(),
        working_dir: c.working_dir.filter(|w| !w.is_empty()),
        user: c.user.filter(|u| !u.is_empty()),
    }
}

/// A path named inside an archive, refused if it would leave it.
fn inside(dir: &Path, relative: &str, shown: &str) -> Result<PathBuf, ImageError> {
    let path = Path::new(relative);
    if path.is_absolute() || path.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return Err(invalid(shown, "manifest.json", format!("path {relative:?} leaves the archive")));
    }
    Ok(dir.join(path))
}

fn blob_path(dir: &Path, digest: &str, shown: &str) -> Result<PathBuf, ImageError> {
    let hex = hex_of(digest)
        .ok_or_else(|| invalid(shown, "descriptor", format!("unsupported digest {digest:?}")))?;
    Ok(dir.join("blobs/sha256").join(hex))
}

/// `path`, if it is a file: else the source lacks blob `digest` (a `what`).
fn existing(path: PathBuf, what: &'static str, digest: &str, shown: &str) -> Result<PathBuf, ImageError> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(ImageError::MissingBlob { what, digest: digest.to_owned(), source_name: shown.to_owned() })
    }
}

/// A small blob's bytes, verified against its descriptor.
fn read_blob(dir: &Path, shown: &str, what: &'static str, d: &Descriptor) -> Result<Vec<u8>, ImageError> {
    let path = existing(blob_path(dir, &d.digest, shown)?, what, &d.digest, shown)?;
    if d.size > MAX_DOCUMENT_BYTES {
        return Err(invalid(shown, what, format!("{} is {} bytes, too large", d.digest, d.size)));
    }
    let bytes = read_limited(&path, shown)?;
    if bytes.len() as u64 != d.size {
        return Err(ImageError::SizeMismatch {
            what,
            digest: d.digest.clone(),
            expected: d.size,
            actual: bytes.len() as u64,
        });
    }
    let (actual, _) = digest_of(&bytes[..]).map_err(ImageError::io(&path))?;
    if actual != d.digest {
        return Err(ImageError::DigestMismatch {
            what,
            digest: d.digest.clone(),
            actual: actual.trim_start_matches("sha256:").to_owned(),
        });
    }
    Ok(bytes)
}

fn read_blob_json<T: serde::de::DeserializeOwned>(
    dir: &Path,
    shown: &str,
    what: &'static str,
    d: &Descriptor,
) -> Result<T, ImageError> {
    let bytes = read_blob(dir, shown, what, d)?;
    parse_json(&bytes, shown, what)
}

fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    shown: &str,
    what: &'static str,
) -> Result<T, ImageError> {
    let bytes = read_limited(path, shown)?;
    parse_json(&bytes, shown, what)
}

fn read_limited(path: &Path, shown: &str) -> Result<Vec<u8>, ImageError> {
    let file = File::open(path).map_err(ImageError::io(path))?;
    let mut bytes = Vec::new();
    file.take(MAX_DOCUMENT_BYTES + 1).read_to_end(&mut bytes).map_err(ImageError::io(path))?;
    if bytes.len() as u64 > MAX_DOCUMENT_BYTES {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        return Err(invalid(shown, "document", format!("{name} is larger than {MAX_DOCUMENT_BYTES} bytes")));
    }
    Ok(bytes)
}

fn parse_json<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    shown: &str,
    what: &'static str,
) -> Result<T, ImageError> {
    serde_json::from_slice(bytes).map_err(|e| invalid(shown, what, e.to_string()))
}

fn invalid(shown: &str, what: &'static str, reason: String) -> ImageError {
    ImageError::InvalidDocument { source_name: shown.to_owned(), what, reason }
}

/// Unpacks an archive (tar, or gzipped tar) of a layout into `dest`.
pub fn extract_archive(path: &Path, dest: &Path) -> Result<(), ImageError> {
    let file = File::open(path).map_err(ImageError::io(path))?;
    let mut reader = std::io::BufReader::new(file);
    let gzip = super::layer::is_gzip(&mut reader).map_err(ImageError::io(path))?;
    let stream: Box<dyn Read> =
        if gzip { Box::new(flate2::read::GzDecoder::new(reader)) } else { Box::new(reader) };
    let mut archive = tar::Archive::new(stream);
    let entries = archive.entries().map_err(ImageError::io(path))?;
    for entry in entries {
        let mut entry = entry.map_err(ImageError::io(path))?;
        if !entry.unpack_in(dest).map_err(ImageError::io(path))? {
            let name = entry.path().map(|p| p.display().to_string()).unwrap_or_default();
            return Err(ImageError::InvalidDocument {
                source_name: path.display().to_string(),
                what: "archive",
                reason: format!("entry {name:?} leaves the archive"),
            });
        }
    }
    Ok(())
}
