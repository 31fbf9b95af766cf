//! Tidying the cgroup directories containers leave: a container's own group and the empty groups
//! above it (a pod's, say) are removed here, up to Bramble's root, when the container is
//! removed (a new run gets a fresh group, so its OOM counter starts at zero).

use std::fs;
use std::path::{Path, PathBuf};

/// The directory of Bramble's groups in every hierarchy: `bramble`.
pub const ROOT: &str = "bramble";

/// Where the cgroup hierarchies are mounted: cgroup v2 itself, or one directory per v1
/// controller.
const BASE: &str = "/sys/fs/cgroup";

/// The files that count OOM kills of group `relative`: v2 `memory.events`, and the v1 memory
/// hierarchy's `memory.oom_control` (whichever this host has).
pub fn oom_counters(relative: &str) -> [PathBuf; 2] {
    let relative = relative.trim_start_matches('/');
    [
        Path::new(BASE).join(relative).join("memory.events"),
        Path::new(BASE).join("memory").join(relative).join("memory.oom_control"),
    ]
}

/// Every place `relative` (such as `bramble/<pod>/<container>`) exists: each cgroup v1
/// hierarchy under `/sys/fs/cgroup/*`, and the v2 hierarchy at `/sys/fs/cgroup` itself.
fn locations(relative: &str) -> Vec<PathBuf> {
    let base = Path::new(BASE);
    let mut found = vec![base.join(relative)];
    if let Ok(entries) = fs::read_dir(base) {
        found.extend(entries.flatten().map(|e| e.path().join(relative)));
    }
    found.into_iter().filter(|p| p.is_dir()).collect()
}

/// Removes the groups of `relative` and its parents below [`ROOT`] that are empty. A group with
/// processes or children stays (rmdir refuses), so this is safe to call at any time.
pub fn remove_empty(relative: &str) {
    let relative = relative.trim_start_matches('/');
    if !relative.starts_with(&format!("{ROOT}/")) {
        return;
    }
    let mut current = relative.to_owned();
    while current != ROOT && !current.is_empty() {
        for dir in locations(&current) {
            let _ = fs::remove_dir(&dir);
        }
        current = match current.rsplit_once('/') {
            Some((parent, _)) => parent.to_owned(),
            None => break,
        };
    }
}
