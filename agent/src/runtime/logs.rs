//! Container output on the board's storage: one file per container, capped in size by
//! rotating to one older file (`NAME.1`), so logs can never fill an SD card.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct RotatingLog {
    path: PathBuf,
    max_bytes: u64,
    file: Option<File>,
    written: u64,
}

impl RotatingLog {
    /// Appends to `path`; half of `max_bytes` goes to each of the current and the older file.
    pub fn open(path: &Path, max_bytes: u64) -> RotatingLog {
        let file = OpenOptions::new().create(true).append(true).open(path).ok();
        let written = file.as_ref().and_then(|f| f.metadata().ok()).map_or(0, |m| m.len());
        RotatingLog { path: path.to_path_buf(), max_bytes: max_bytes.max(2), file, written }
    }

    pub fn write(&mut self, bytes: &[u8]) {
        if self.written + bytes.len() as u64 > self.max_bytes / 2 {
            self.rotate();
        }
        if let Some(file) = &mut self.file
            && file.write_all(bytes).is_ok()
        {
            self.written += bytes.len() as u64;
        }
    }

    fn rotate(&mut self) {
        self.file = None;
        let _ = fs::rename(&self.path, rotated(&self.path));
        self.file = OpenOptions::new().create(true).append(true).open(&self.path).ok();
        self.written = 0;
    }
}

/// The older file of a log.
pub fn rotated(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_holds_more_than_its_cap() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("c.log");
        let mut log = RotatingLog::open(&path, 100);
        for i in 0..50 {
            log.write(format!("line {i:02}\n").as_bytes());
        }
        let current = fs::read_to_string(&path).expect("current");
        let older = fs::read_to_string(rotated(&path)).expect("older");
        assert!(current.len() + older.len() <= 100, "{} + {}", current.len(), older.len());
        assert!(current.ends_with("line 49\n"), "{current}");
        assert!(
            older.ends_with(&format!(
                "{}\n",
                current
                    .lines()
                    .next()
                    .map(|l| {
                        let n: u32 = l.trim_start_matches("line ").parse().expect("number");
                        format!("line {:02}", n - 1)
                    })
                    .expect("a line")
            )),
            "the older file ends where the current begins"
        );
    }
}
