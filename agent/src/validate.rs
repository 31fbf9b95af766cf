//! `bramble-agent validate FILE…`: the manifest rules, on the board.

use std::path::PathBuf;
use std::process::ExitCode;

use bramble_common::manifest::MAX_MANIFEST_BYTES;
use bramble_common::{Diagnostic, Manifests, parse_manifest_bytes, render_report};

pub fn run(files: &[PathBuf]) -> ExitCode {
    let mut manifests = Manifests::default();
    for file in files {
        let shown = file.display().to_string();
        match read_bounded(file) {
            Ok(bytes) => manifests.extend(parse_manifest_bytes(&shown, &bytes)),
            Err(e) => manifests.errors.push(Diagnostic::for_source(&shown, format!("cannot read: {e}"))),
        }
    }
    print!("{}", render_report(&manifests));
    if manifests.is_ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// The file's bytes, at most one past the manifest limit (enough to report it as too large).
pub(crate) fn read_bounded(file: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    let limit = u64::try_from(MAX_MANIFEST_BYTES + 1).unwrap_or(u64::MAX);
    std::fs::File::open(file)?.take(limit).read_to_end(&mut bytes)?;
    Ok(bytes)
}
