//! The manifests directory, watched by polling (cheap, and works on every filesystem): YAML and
//! JSON files directly in it, hidden files (editors' temporaries) skipped. A file with errors
//! keeps the objects it last gave without errors, so a typo never stops running pods.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bramble_common::{Object, parse_manifest_bytes};

/// A file's identity for change detection.
type Fingerprint = Vec<(PathBuf, Option<SystemTime>, u64)>;

#[derive(Debug)]
pub struct ManifestDir {
    dir: PathBuf,
    seen: Option<Fingerprint>,
    last_good: BTreeMap<PathBuf, Vec<Object>>,
}

/// What the directory holds now.
#[derive(Debug, Default)]
pub struct Read {
    pub objects: Vec<Object>,
    /// Each error, one line: file, document, object, field, problem, line.
    pub errors: Vec<String>,
}

impl ManifestDir {
    pub fn new(dir: &Path) -> ManifestDir {
        ManifestDir { dir: dir.to_path_buf(), seen: None, last_good: BTreeMap::new() }
    }

    fn fingerprint(&self) -> Result<Fingerprint, String> {
        let entries = fs::read_dir(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let mut files: Fingerprint = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| is_manifest_name(p))
            .filter_map(|p| {
                // One stat per file, following symlinks (a manifest may be a link).
                let meta = fs::metadata(&p).ok().filter(|m| m.is_file())?;
                Some((p, meta.modified().ok(), meta.len()))
            })
            .collect();
        files.sort();
        Ok(files)
    }

    /// The objects, when anything changed since the last call (always on the first).
    pub fn read_if_changed(&mut self) -> Option<Result<Read, String>> {
        let fingerprint = match self.fingerprint() {
            Ok(f) => f,
            Err(e) => {
                let first = self.seen.is_none();
                self.seen = Some(Vec::new());
                return first.then_some(Err(e));
            }
        };
        if self.seen.as_ref() == Some(&fingerprint) {
            return None;
        }
        self.seen = Some(fingerprint.clone());
        let mut read = Read::default();
        let mut good = BTreeMap::new();
        for (path, _, _) in &fingerprint {
            let shown = path.display().to_string();
            let manifests = match crate::validate::read_bounded(path) {
                Ok(bytes) => parse_manifest_bytes(&shown, &bytes),
                Err(e) => {
                    read.errors.push(format!("{shown}: cannot read: {e}"));
                    continue;
                }
            };
            if manifests.is_ok() {
                good.insert(path.clone(), manifests.objects.into_iter().map(|o| o.object).collect());
            } else {
                read.errors.extend(manifests.errors.iter().map(|d| d.to_string()));
                if let Some(previous) = self.last_good.get(path) {
                    good.insert(path.clone(), previous.clone());
                }
            }
        }
        self.last_good = good;
        read.objects = self.last_good.values().flatten().cloned().collect();
        Some(Ok(read))
    }
}

fn is_manifest_name(path: &Path) -> bool {
    let hidden = path.file_name().and_then(|n| n.to_str()).is_none_or(|n| n.starts_with('.'));
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
    !hidden && matches!(ext, "yaml" | "yml" | "json")
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: busybox\n";

    #[test]
    fn changes_are_seen_once_and_a_broken_file_keeps_its_last_good_objects() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut watched = ManifestDir::new(dir.path());
        let first = watched.read_if_changed().expect("first read").expect("readable");
        assert!(first.objects.is_empty() && first.errors.is_empty());
        assert!(watched.read_if_changed().is_none());

        fs::write(dir.path().join("p.yaml"), POD).expect("write");
        fs::write(dir.path().join(".p.yaml.swp"), "junk").expect("write");
        let read = watched.read_if_changed().expect("changed").expect("readable");
        assert_eq!((read.objects.len(), read.errors.len()), (1, 0));

        fs::write(dir.path().join("p.yaml"), POD.replace("image: busybox", "image: [")).expect("write");
        let read = watched.read_if_changed().expect("changed").expect("readable");
        assert_eq!(read.objects.len(), 1, "the last good pod stays");
        assert_eq!(read.errors.len(), 1);
        assert!(read.errors[0].contains("p.yaml"), "{:?}", read.errors);

        fs::remove_file(dir.path().join("p.yaml")).expect("remove");
        let read = watched.read_if_changed().expect("changed").expect("readable");
        assert!(read.objects.is_empty());
    }
}
