//! Pinning images at apply: the coordinator asks each image's registry which manifest (for a
//! multi-arch image, which index) its tag names now, and a new Deployment revision keeps that
//! digest, so every replica of the revision runs the same bytes even if the tag moves later,
//! and an undo restates the very digest it ran. This is the only part of the coordinator that
//! talks to registries (oci-client, HTTPS; plain HTTP for registries named insecure).

use std::collections::BTreeMap;
use std::time::Duration;

use bramble_common::Object;
use bramble_common::image_ref::ImageRef;
use bramble_common::objects::PullPolicy;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

/// How long one apply may wait for the registries.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Image references as written to what each resolved to (`…:tag@sha256:…`), or why not.
pub type Pins = BTreeMap<String, Result<String, String>>;

#[derive(Debug, Clone, Default)]
pub struct Resolver {
    /// Registries reached over plain HTTP.
    pub insecure_registries: Vec<String>,
}

impl Resolver {
    /// Resolves every image of the Deployments in `objects` that names no digest yet, but
    /// those with `imagePullPolicy: Never` (images imported on the boards, no registry's).
    pub async fn pins(&self, objects: &[Object]) -> Pins {
        let mut images: Vec<String> = objects
            .iter()
            .filter_map(|o| match o {
                Object::Deployment(d) => Some(&d.spec.template.spec.containers),
                _ => None,
            })
            .flatten()
            .filter(|c| c.image_pull_policy != Some(PullPolicy::Never))
            .map(|c| c.image.clone())
            .collect();
        images.sort();
        images.dedup();
        let lookups = images.into_iter().map(|image| async move {
            let pinned = match tokio::time::timeout(RESOLVE_TIMEOUT, self.resolve(&image)).await {
                Ok(result) => result,
                Err(_) => Err(format!("the registry did not answer within {}s", RESOLVE_TIMEOUT.as_secs())),
            };
            (image, pinned)
        });
        futures_util::future::join_all(lookups).await.into_iter().collect()
    }

    /// `image` with the digest its registry gives for it now.
    async fn resolve(&self, image: &str) -> Result<String, String> {
        let mut wanted = ImageRef::parse(image).map_err(|e| e.to_string())?;
        if wanted.digest.is_some() {
            return Ok(wanted.to_string());
        }
        let reference: Reference = wanted.to_string().parse().map_err(|e| format!("{e}"))?;
        let protocol = if self.insecure_registries.contains(&wanted.domain) {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        };
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = Client::new(ClientConfig {
            protocol,
            connect_timeout: Some(Duration::from_secs(5)),
            read_timeout: Some(Duration::from_secs(10)),
            ..ClientConfig::default()
        });
        let digest = client
            .fetch_manifest_digest(&reference, &RegistryAuth::Anonymous)
            .await
            .map_err(|e| bramble_common::error_chain(&e))?;
        wanted.digest = Some(digest);
        Ok(wanted.to_string())
    }
}
