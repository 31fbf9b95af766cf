//! `bramble-agent image import|ls|rm`: the image store from the command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bramble_common::platform::Platform;
use clap::Subcommand;

use crate::image::{ImageRecord, ImageStore, Progress, PullOptions};
use crate::status::human_bytes;

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Import an OCI image layout, an OCI archive or a `docker save` archive.
    Import {
        /// A directory (OCI layout) or a .tar / .tar.gz file.
        file: PathBuf,
        /// The image's name, instead of the one the archive gives.
        #[arg(long)]
        name: Option<String>,
    },
    /// Pull an image from a registry: only this board's platform, only the layers not stored.
    Pull {
        /// `busybox:1.36`, `ghcr.io/owner/app@sha256:…`, `registry.local:5000/app:v2`.
        image: String,
        /// A registry reached over plain HTTP instead of HTTPS (`host:port`; repeatable).
        #[arg(long = "insecure-registry")]
        insecure_registries: Vec<String>,
        /// Another platform than this board's (`linux/arm/v7`), as `docker pull --platform`.
        #[arg(long, value_parser = parse_platform)]
        platform: Option<Platform>,
    },
    /// List the stored images.
    Ls,
    /// Remove an image, and its layers that no other image uses.
    Rm {
        /// As a pod would name it: `busybox`, `busybox:1.36`, `ghcr.io/a/b@sha256:…`.
        image: String,
    },
}

pub fn run(state_dir: &Path, command: ImageCommand) -> ExitCode {
    let result = ImageStore::open(state_dir).and_then(|store| match command {
        ImageCommand::Import { file, name } => {
            let record = store.import(&file, name.as_deref(), &Platform::of_this_build())?;
            println!(
                "imported {} ({}, {} layers, {})",
                record.name,
                record.platform,
                record.layers.len(),
                short(&identity(&record))
            );
            Ok(())
        }
        ImageCommand::Pull { image, insecure_registries, platform } => {
            let options = PullOptions { insecure_registries, attempts: 8, ..PullOptions::default() };
            let mut last_shown = (usize::MAX, 0u64);
            let mut report = |p: Progress| {
                // A line per layer and per 8 MiB, not per chunk.
                let shown = (p.layers_done, p.bytes >> 23);
                if shown != last_shown {
                    eprintln!(
                        "pulling {image}: {} of {} layers, {}",
                        p.layers_done,
                        p.layers,
                        human_bytes(p.bytes)
                    );
                    last_shown = shown;
                }
            };
            let platform = platform.unwrap_or_else(Platform::of_this_build);
            let pulled = store.pull(&image, &platform, &options, &mut report)?;
            let record = &pulled.record;
            println!(
                "pulled {} ({}, {} layers: {} fetched, {} already stored; {} ({} bytes) over the network, {})",
                record.name,
                record.platform,
                record.layers.len(),
                pulled.layers_fetched,
                pulled.layers_present,
                human_bytes(pulled.bytes_fetched),
                pulled.bytes_fetched,
                short(&identity(record))
            );
            Ok(())
        }
        ImageCommand::Ls => {
            println!("{:<48} {:<16} {:<14} {:>6}", "IMAGE", "PLATFORM", "ID", "LAYERS");
            for record in store.list()? {
                let id = short(&identity(&record));
                println!(
                    "{:<48} {:<16} {:<14} {:>6}",
                    record.name,
                    record.platform.to_string(),
                    id,
                    record.layers.len()
                );
            }
            Ok(())
        }
        ImageCommand::Rm { image } => {
            let record = store.remove(&image)?;
            println!("removed {}", record.name);
            Ok(())
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn identity(record: &ImageRecord) -> String {
    record.manifest_digest.clone().unwrap_or_else(|| record.config_digest.clone())
}

/// `os/architecture[/variant]`.
fn parse_platform(text: &str) -> Result<Platform, String> {
    let parts: Vec<&str> = text.split('/').collect();
    match parts.as_slice() {
        [os, architecture] if !os.is_empty() && !architecture.is_empty() => {
            Ok(Platform::new(os, architecture, None))
        }
        [os, architecture, variant] if !os.is_empty() && !architecture.is_empty() && !variant.is_empty() => {
            Ok(Platform::new(os, architecture, Some(variant)))
        }
        _ => Err(format!("{text:?}: expected OS/ARCH[/VARIANT], e.g. linux/arm64 or linux/arm/v7")),
    }
}

fn short(digest: &str) -> String {
    digest.trim_start_matches("sha256:").chars().take(12).collect()
}
