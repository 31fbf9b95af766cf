//! A container's root: the image's layers read-only under overlayfs, with a writable layer of
//! its own that is thrown away when the container is replaced.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

/// Mounts `layers` (bottom first) with `upper`/`work` at `target`, creating the directories.
pub fn mount_overlay(layers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> io::Result<()> {
    for dir in [upper, work, target] {
        fs::create_dir_all(dir)?;
    }
    if layers.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "an image without layers"));
    }
    // overlayfs lists lower layers top first.
    let lower: Vec<String> = layers.iter().rev().map(|p| p.display().to_string()).collect();
    let options =
        format!("lowerdir={},upperdir={},workdir={}", lower.join(":"), upper.display(), work.display());
    mount(Some("overlay"), target, Some("overlay"), MsFlags::empty(), Some(options.as_str()))
        .map_err(io::Error::from)
}

/// Unmounts `target` if something is mounted there (lazily, so a busy mount still goes).
pub fn unmount(target: &Path) -> io::Result<()> {
    match umount2(target, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
