//! Container output on the board's storage: one file per container, capped in size by
//! rotating to one older file (`NAME.1`), so logs can never fill an SD card. The reaper writes
//! them (`bramble_reaper::log`); the agent reads them.

use std::path::{Path, PathBuf};

/// The older file of a log.
pub fn rotated(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}
