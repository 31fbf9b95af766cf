//! Pulling an image from an OCI or Docker registry with `oci-client` (HTTPS; plain HTTP only
//! for registries named insecure). Only the board's platform is fetched from a multi-arch
//! index; layers the store already has are not fetched again. Each blob streams into
//! `images/pulls/<reference>/blobs/` as a `.partial` file, hashed as it comes: a pull cut off
//! resumes where it stopped (an HTTP range request), a blob whose sha256 is not its digest is
//! thrown away, and failed requests are retried with backoff. What was fetched is then
//! imported as an OCI layout, so a pull publishes its image atomically like any import.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bramble_common::image_ref::ImageRef;
use bramble_common::platform::Platform;
use futures_util::StreamExt;
use oci_client::client::{BlobResponse, ClientConfig, ClientProtocol};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::layer::hex;
use super::{ImageError, ImageRecord, ImageStore, hex_of};
use crate::fsutil::write_atomic;

/// Manifest types a pull accepts, index or single image, OCI or Docker.
const ACCEPTED: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// Where and how to pull from.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Registries (`host:port`) reached over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// User and password per registry host; anonymous elsewhere.
    pub credentials: BTreeMap<String, (String, String)>,
    /// Tries of each request before the pull fails (backoff 0.5 s doubling to 8 s).
    pub attempts: u32,
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub record: ImageRecord,
    /// Bytes that came over the network (manifests, config and new layers).
    pub bytes_fetched: u64,
    pub layers_fetched: usize,
    /// Layers the store had already (shared with another image).
    pub layers_present: usize,
}

/// A pull as it goes, for `bramble-agent image pull` and the coordinator's progress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub layers_done: usize,
    pub layers: usize,
    pub bytes: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexDoc {
    #[serde(default)]
    manifests: Vec<IndexEntry>,
}

#[derive(Deserialize)]
struct IndexEntry {
    digest: String,
    #[serde(default)]
    platform: Option<PlatformDoc>,
}

#[derive(Deserialize)]
struct PlatformDoc {
    os: String,
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

impl PlatformDoc {
    fn platform(&self) -> Platform {
        Platform::new(&self.os, &self.architecture, self.variant.as_deref())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestDoc {
    #[serde(default)]
    media_type: Option<String>,
    config: OciDescriptor,
    layers: Vec<OciDescriptor>,
}

#[derive(Deserialize)]
struct ConfigDoc {
    rootfs: RootFs,
}

#[derive(Deserialize)]
struct RootFs {
    diff_ids: Vec<String>,
}

impl ImageStore {
    /// Pulls `reference` for `board` and stores it; `progress` hears of each chunk.
    pub fn pull(
        &self,
        reference: &str,
        board: &Platform,
        options: &PullOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Pulled, ImageError> {
        let wanted = ImageRef::parse(reference)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| registry_error(reference, format!("cannot start the network runtime: {e}")))?;
        let pull = Pull::new(self, &wanted, options)?;
        let layout = pull.layout.clone();
        // Every error names the image it was pulling.
        let result = runtime.block_on(pull.run(board, progress)).map_err(|e| match e {
            ImageError::Registry { .. } => e,
            other => registry_error(reference, other.to_string()),
        });
        if result.is_err() && !has_partial_blob(&layout) {
            // Nothing to resume from: leave no trace.
            let _ = fs::remove_dir_all(&layout);
        }
        result
    }
}

/// Whether a pull's layout holds a blob fetched in part, worth resuming.
fn has_partial_blob(layout: &Path) -> bool {
    fs::read_dir(layout.join("blobs/sha256")).into_iter().flatten().flatten().any(|entry| {
        entry.path().extension().is_some_and(|e| e == "partial")
            && entry.metadata().is_ok_and(|m| m.len() > 0)
    })
}

fn registry_error(reference: &str, reason: impl Into<String>) -> ImageError {
    ImageError::Registry { reference: reference.to_owned(), reason: reason.into() }
}

/// One pull under way.
struct Pull<'a> {
    store: &'a ImageStore,
    wanted: &'a ImageRef,
    shown: String,
    reference: Reference,
    client: Client,
    auth: RegistryAuth,
    attempts: u32,
    /// The pull's OCI layout, kept across tries so a cut pull resumes.
    layout: PathBuf,
    fetched: u64,
}

impl<'a> Pull<'a> {
    fn new(
        store: &'a ImageStore,
        wanted: &'a ImageRef,
        options: &PullOptions,
    ) -> Result<Pull<'a>, ImageError> {
        let shown = wanted.to_string();
        let reference: Reference = shown.parse().map_err(|e| registry_error(&shown, format!("{e}")))?;
        let protocol = if options.insecure_registries.contains(&wanted.domain) {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        };
        install_crypto();
        let client = Client::new(ClientConfig {
            protocol,
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(30)),
            platform_resolver: None,
            ..ClientConfig::default()
        });
        let auth = match options.credentials.get(&wanted.domain) {
            Some((user, password)) => RegistryAuth::Basic(user.clone(), password.clone()),
            None => RegistryAuth::Anonymous,
        };
        // One folder per reference: a pull of another tag of the same repository at the same
        // time has its own, and a pull of this reference cut off resumes from it.
        let layout = store.root.join("pulls").join(&hex(&Sha256::digest(shown.as_bytes()))[..16]);
        let blobs = layout.join("blobs/sha256");
        fs::create_dir_all(&blobs).map_err(ImageError::io(&blobs))?;
        Ok(Pull {
            store,
            wanted,
            shown,
            reference,
            client,
            auth,
            attempts: options.attempts.max(1),
            layout,
            fetched: 0,
        })
    }

    async fn run(
        mut self,
        board: &Platform,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Pulled, ImageError> {
        // The manifest the reference names; from an index, the one for this board.
        let (top, top_digest) = self.manifest(&self.reference.clone()).await?;
        if let Some(digest) = &self.wanted.digest
            && *digest != top_digest
        {
            return Err(registry_error(&self.shown, format!("the registry sent manifest {top_digest}")));
        }
        let (manifest_bytes, manifest_digest, index_digest) = if is_index(&top) {
            let index: IndexDoc = parse(&top, &self.shown, "image index")?;
            let chosen = choose(&index.manifests, board).ok_or_else(|| ImageError::NoPlatform {
                source_name: self.shown.clone(),
                wanted: board.to_string(),
                available: platforms(&index.manifests),
            })?;
            let by_digest = Reference::with_digest(
                self.reference.registry().to_owned(),
                self.reference.repository().to_owned(),
                chosen.digest.clone(),
            );
            let (bytes, digest) = self.manifest(&by_digest).await?;
            (bytes, digest, Some(top_digest))
        } else {
            (top, top_digest, None)
        };
        let manifest: ManifestDoc = parse(&manifest_bytes, &self.shown, "manifest")?;
        let config_path = self.blob(&manifest.config, &mut |_| {}).await?;
        let config_bytes = fs::read(&config_path).map_err(ImageError::io(&config_path))?;
        let config: ConfigDoc = parse(&config_bytes, &self.shown, "image config")?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(ImageError::InvalidDocument {
                source_name: self.shown.clone(),
                what: "image config",
                reason: format!(
                    "{} layers in the manifest, {} diff_ids in the config",
                    manifest.layers.len(),
                    config.rootfs.diff_ids.len()
                ),
            });
        }
        let mut state = Progress { layers: manifest.layers.len(), ..Progress::default() };
        let (mut layers_fetched, mut layers_present) = (0, 0);
        for (layer, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
            if self.store.layer_dir(diff_id).is_some_and(|d| d.is_dir()) {
                layers_present += 1;
            } else {
                let before = self.fetched;
                self.blob(layer, &mut |n| progress(Progress { bytes: state.bytes + n, ..state })).await?;
                state.bytes += self.fetched - before;
                layers_fetched += 1;
            }
            state.layers_done += 1;
            progress(state);
        }
        // The layout names the board's manifest only: the import reads nothing else.
        let index = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": manifest.media_type.as_deref().unwrap_or("application/vnd.oci.image.manifest.v1+json"),
                "digest": manifest_digest,
                "size": manifest_bytes.len(),
                "annotations": {"org.opencontainers.image.ref.name": self.shown},
            }],
        });
        let index_path = self.layout.join("index.json");
        write_atomic(&index_path, index.to_string().as_bytes()).map_err(ImageError::io(&index_path))?;
        fs::write(self.layout.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
            .map_err(ImageError::io(self.layout.join("oci-layout")))?;
        let record = self.store.import_pulled(&self.layout, &self.shown, board, index_digest)?;
        // Fetched blobs are in the store now (unpacked); the layout is not needed again.
        let _ = fs::remove_dir_all(&self.layout);
        Ok(Pulled { record, bytes_fetched: self.fetched, layers_fetched, layers_present })
    }

    /// A manifest's bytes and digest, checked against each other and kept in the layout.
    async fn manifest(&mut self, reference: &Reference) -> Result<(Vec<u8>, String), ImageError> {
        let mut attempt = 0;
        let (bytes, digest) = loop {
            match self.client.pull_manifest_raw(reference, &self.auth, ACCEPTED).await {
                Ok(found) => break found,
                Err(e) if attempt + 1 < self.attempts && retryable(&e) => {
                    attempt += 1;
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => {
                    let mut reason = bramble_common::error_chain(&e);
                    if reason.contains("InvalidContentType") {
                        // A TLS hello answered in plain HTTP.
                        let host = &self.wanted.domain;
                        reason.push_str(&format!(
                            " ({host} speaks plain HTTP? name it with --insecure-registry {host})"
                        ));
                    }
                    return Err(registry_error(&self.shown, reason));
                }
            }
        };
        let actual = format!("sha256:{}", hex(&Sha256::digest(&bytes)));
        if actual != digest {
            return Err(ImageError::DigestMismatch {
                what: "manifest",
                digest,
                actual: actual.trim_start_matches("sha256:").to_owned(),
            });
        }
        self.fetched += bytes.len() as u64;
        let path = self.blob_path(&digest)?;
        write_atomic(&path, &bytes).map_err(ImageError::io(&path))?;
        Ok((bytes.to_vec(), digest))
    }

    fn blob_path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        let hex = hex_of(digest)
            .ok_or_else(|| registry_error(&self.shown, format!("unsupported digest {digest:?}")))?;
        Ok(self.layout.join("blobs/sha256").join(hex))
    }

    /// Fetches one blob into the layout: resumed from its `.partial` file, hashed as it
    /// streams, renamed into place only when its sha256 and size are the descriptor's.
    async fn blob(
        &mut self,
        desc: &OciDescriptor,
        progress: &mut dyn FnMut(u64),
    ) -> Result<PathBuf, ImageError> {
        let path = self.blob_path(&desc.digest)?;
        if path.is_file() {
            return Ok(path);
        }
        let size = u64::try_from(desc.size).unwrap_or(0);
        let partial = path.with_extension("partial");
        let mut attempt = 0;
        loop {
            match self.fetch_partial(desc, &partial, size, progress).await {
                Ok(()) => break,
                Err(e) if attempt + 1 < self.attempts => {
                    attempt += 1;
                    crate::log(format!("pull {}: blob {}: {e}; trying again", self.shown, desc.digest));
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => return Err(registry_error(&self.shown, format!("blob {}: {e}", desc.digest))),
            }
        }
        let (actual, length) = hash_file(&partial)?;
        if length != size {
            let _ = fs::remove_file(&partial);
            return Err(ImageError::SizeMismatch {
                what: "blob",
                digest: desc.digest.clone(),
                expected: size,
                actual: length,
            });
        }
        if format!("sha256:{actual}") != desc.digest {
            let _ = fs::remove_file(&partial);
            return Err(ImageError::DigestMismatch { what: "blob", digest: desc.digest.clone(), actual });
        }
        fs::rename(&partial, &path).map_err(ImageError::io(&path))?;
        Ok(path)
    }

    /// Appends to `partial` what the registry has past its end, up to `size` bytes.
    async fn fetch_partial(
        &mut self,
        desc: &OciDescriptor,
        partial: &Path,
        size: u64,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), String> {
        let mut offset = fs::metadata(partial).map(|m| m.len()).unwrap_or(0);
        if offset > size {
            fs::remove_file(partial).map_err(|e| e.to_string())?;
            offset = 0;
        }
        if offset == size && size > 0 {
            return Ok(());
        }
        let response = self
            .client
            .pull_blob_stream_partial(&self.reference, desc, offset, None)
            .await
            .map_err(|e| bramble_common::error_chain(&e))?;
        let (mut stream, append) = match response {
            BlobResponse::Partial(stream) => (stream, offset > 0),
            // The registry sent the whole blob: start the file again.
            BlobResponse::Full(stream) => (stream, false),
        };
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(partial)
            .map_err(|e| format!("{}: {e}", partial.display()))?;
        let mut written = if append { offset } else { 0 };
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| format!("cut off after {written} of {size} bytes: {e}"))?;
            written += chunk.len() as u64;
            if written > size {
                return Err(format!("the registry sent more than the {size} bytes the manifest says"));
            }
            file.write_all(&chunk).map_err(|e| format!("{}: {e}", partial.display()))?;
            self.fetched += chunk.len() as u64;
            progress(written);
        }
        file.sync_all().map_err(|e| format!("{}: {e}", partial.display()))?;
        if written < size {
            return Err(format!("cut off after {written} of {size} bytes"));
        }
        Ok(())
    }
}

/// The sha256 (hex) and length of a file.
fn hash_file(path: &Path) -> Result<(String, u64), ImageError> {
    let mut file = File::open(path).map_err(ImageError::io(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut length = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(ImageError::io(path))?;
        if n == 0 {
            return Ok((hex(&hasher.finalize()), length));
        }
        hasher.update(&buf[..n]);
        length += n as u64;
    }
}

fn parse<'de, T: Deserialize<'de>>(
    bytes: &'de [u8],
    shown: &str,
    what: &'static str,
) -> Result<T, ImageError> {
    serde_json::from_slice(bytes).map_err(|e| ImageError::InvalidDocument {
        source_name: shown.to_owned(),
        what,
        reason: e.to_string(),
    })
}

fn is_index(bytes: &[u8]) -> bool {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Kind {
        #[serde(default)]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
    }
    serde_json::from_slice::<Kind>(bytes).is_ok_and(|k| {
        k.manifests.is_some()
            || k.media_type.is_some_and(|m| m.contains("index") || m.contains("manifest.list"))
    })
}

/// The index entry that suits `board` best.
fn choose<'i>(manifests: &'i [IndexEntry], board: &Platform) -> Option<&'i IndexEntry> {
    manifests
        .iter()
        .filter_map(|d| board.preference(&d.platform.as_ref()?.platform()).map(|score| (score, d)))
        .min_by_key(|(score, _)| *score)
        .map(|(_, d)| d)
}

fn platforms(manifests: &[IndexEntry]) -> String {
    let names: Vec<String> =
        manifests.iter().filter_map(|d| d.platform.as_ref()).map(|p| p.platform().to_string()).collect();
    if names.is_empty() { "no platforms".to_owned() } else { names.join(", ") }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << attempt.min(4)).min(8_000))
}

/// Network trouble, server errors and "too many requests" are tried again; an answer that
/// will not change (unknown image, no access, bad name) is not.
fn retryable(error: &oci_client::errors::OciDistributionError) -> bool {
    use oci_client::errors::{OciDistributionError as E, OciErrorCode};
    match error {
        E::AuthenticationFailure(_) | E::UnauthorizedError { .. } | E::ImageManifestNotFoundError(_) => false,
        E::RegistryError { envelope, .. } => {
            envelope.errors.iter().all(|e| e.code == OciErrorCode::Toomanyrequests)
        }
        _ => true,
    }
}

/// rustls needs one crypto provider for the process: ring, pure Rust and assembly, which builds
/// for every board.
fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
