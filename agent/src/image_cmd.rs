//! `bramble-agent image import|ls|rm`: the image store from the command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bramble_common::platform::Platform;
use clap::Subcommand;

use crate::image::{ImageRecord, ImageStore};

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

fn short(digest: &str) -> String {
    digest.trim_start_matches("sha256:").chars().take(12).collect()
}
