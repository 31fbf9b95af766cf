//! `bramble validate -f FILE|DIR|-`: decode and check manifests, apply nothing.

use std::path::PathBuf;
use std::process::ExitCode;

use bramble_common::render_report;

use crate::manifest_files::read_all;

pub fn run(filenames: &[PathBuf], recursive: bool) -> anyhow::Result<ExitCode> {
    let manifests = read_all(filenames, recursive);
    print!("{}", render_report(&manifests));
    Ok(if manifests.is_ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
