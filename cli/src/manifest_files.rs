//! Reads manifests from what `-f` names: files, directories (optionally recursive), or stdin.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use bramble_common::Diagnostic;
use bramble_common::manifest::{MAX_MANIFEST_BYTES, Manifests, parse_manifest_bytes};

/// The manifests `filenames` names, for a verb that acts on them (`apply`, `diff`, `delete`):
/// `None`, after printing every error, if any has one.
pub fn read_valid(filenames: &[PathBuf], recursive: bool) -> Option<Manifests> {
    let manifests = read_all(filenames, recursive);
    if manifests.is_ok() {
        return Some(manifests);
    }
    eprint!("{}", bramble_common::manifest::render_report(&manifests));
    None
}

/// Reads and parses every manifest `filenames` names. Unreadable files become errors in the
/// result, so one bad path does not hide the others.
pub fn read_all(filenames: &[PathBuf], recursive: bool) -> Manifests {
    let mut out = Manifests::default();
    for name in filenames {
        if name.as_os_str() == "-" {
            out.extend(read_one("<stdin>", std::io::stdin().lock()));
            continue;
        }
        let shown = name.display().to_string();
        match collect_files(name, recursive) {
            Ok(files) if files.is_empty() => {
                out.errors
                    .push(Diagnostic::for_source(&shown, "no .yaml, .yml or .json files in the directory"));
            }
            Ok(files) => {
                for file in files {
                    let shown = file.display().to_string();
                    match fs::File::open(&file) {
                        Ok(f) => out.extend(read_one(&shown, f)),
                        Err(e) => {
                            out.errors.push(Diagnostic::for_source(&shown, format!("cannot read: {e}")))
                        }
                    }
                }
            }
            Err(e) => out.errors.push(Diagnostic::for_source(&shown, format!("cannot read: {e}"))),
        }
    }
    out
}

fn read_one(shown: &str, reader: impl Read) -> Manifests {
    // One byte over the limit is enough for the parser to say the file is too large.
    let mut bytes = Vec::new();
    let limit = u64::try_from(MAX_MANIFEST_BYTES + 1).unwrap_or(u64::MAX);
    match reader.take(limit).read_to_end(&mut bytes) {
        Ok(_) => parse_manifest_bytes(shown, &bytes),
        Err(e) => Manifests {
            objects: Vec::new(),
            errors: vec![Diagnostic::for_source(shown, format!("cannot read: {e}"))],
        },
    }
}

/// The manifest files at `path`: itself if a file, else its manifest files in name order.
fn collect_files(path: &Path, recursive: bool) -> std::io::Result<Vec<PathBuf>> {
    if !fs::metadata(path)?.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut entries: Vec<PathBuf> =
        fs::read_dir(path)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    entries.sort();
    let mut files = Vec::new();
    for entry in entries {
        if entry.is_dir() {
            if recursive {
                files.extend(collect_files(&entry, true)?);
            }
        } else if entry.extension().is_some_and(|e| e == "yaml" || e == "yml" || e == "json") {
            files.push(entry);
        }
    }
    Ok(files)
}
