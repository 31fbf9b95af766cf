//! Writing state to the board's storage: atomically (temp file, fsync, rename, fsync of the
//! directory) and only when the content changed, because SD cards wear out.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Replaces `path` with `bytes` so that a crash leaves the old or the new content, never a mix.
/// Does nothing (and returns `false`) when the file already holds exactly `bytes`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<bool> {
    if fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(false);
    }
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut temp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    temp.write_all(bytes)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    File::open(dir)?.sync_all()?;
    Ok(true)
}

/// Total and available bytes of the filesystem holding `path` (statvfs).
pub fn disk_space(path: &Path) -> io::Result<(u64, u64)> {
    let stats = nix::sys::statvfs::statvfs(path).map_err(io::Error::from)?;
    // Both are 32-bit on armv7 boards and 64-bit here.
    #[allow(clippy::useless_conversion)]
    let block = u64::from(stats.fragment_size());
    #[allow(clippy::useless_conversion)]
    let (total, available) = (u64::from(stats.blocks()), u64::from(stats.blocks_available()));
    Ok((total.saturating_mul(block), available.saturating_mul(block)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_once_and_only_on_change() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("state.json");
        assert!(write_atomic(&path, b"one").expect("first write"));
        assert!(!write_atomic(&path, b"one").expect("same content"));
        assert!(write_atomic(&path, b"two").expect("changed"));
        assert_eq!(fs::read(&path).expect("read"), b"two");
        let leftovers: Vec<_> = fs::read_dir(dir.path()).expect("list").collect();
        assert_eq!(leftovers.len(), 1, "no temp files left behind");
    }
}
