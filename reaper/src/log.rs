//! The container's output on the board's storage, capped: when the current file would pass
//! half the cap it becomes `LOG.1` (replacing the older one) and a new file starts, so the two
//! never hold more than the cap together and logs can never fill an SD card.

use core::ffi::CStr;

use crate::sys::{self, Fd};
use crate::{Buf, with_suffix};

#[derive(Debug)]
pub struct RotatingLog<'a> {
    path: &'a CStr,
    older: Option<Buf<4352>>,
    half: u64,
    file: Option<Fd>,
    written: u64,
}

fn open_append(path: &CStr) -> Option<Fd> {
    Fd::open(path, libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND, 0o640).ok()
}

impl<'a> RotatingLog<'a> {
    /// Appends to `path` (what is there counts towards the cap).
    pub fn open(path: &'a CStr, max_bytes: u64) -> RotatingLog<'a> {
        let file = open_append(path);
        let written = file.as_ref().and_then(|f| f.size().ok()).unwrap_or(0);
        RotatingLog { path, older: with_suffix(path, b".1").ok(), half: max_bytes.max(2) / 2, file, written }
    }

    /// Writes `bytes`, rotating first when they would pass half the cap. A failed write (a
    /// full disk) drops the output rather than stop the container.
    pub fn write(&mut self, bytes: &[u8]) {
        // An empty current file is not rotated: that would only empty the older one.
        if self.written > 0 && self.written + bytes.len() as u64 > self.half {
            self.rotate();
        }
        // A chunk larger than half the cap keeps its end only.
        let keep =
            usize::try_from(self.half).map_or(bytes, |half| &bytes[bytes.len().saturating_sub(half)..]);
        if let Some(file) = &self.file
            && file.write_all(keep).is_ok()
        {
            self.written += keep.len() as u64;
        }
    }

    fn rotate(&mut self) {
        self.file = None;
        let renamed = self
            .older
            .as_mut()
            .and_then(|o| o.c_str().ok())
            .is_some_and(|older| sys::rename(self.path, older).is_ok());
        // If the current file could not become the older one, it starts again empty: the cap
        // holds either way.
        let flags = if renamed { 0 } else { libc::O_TRUNC };
        self.file = Fd::open(self.path, libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | flags, 0o640).ok();
        self.written = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::format;
    use std::string::String;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("bramble-reaper-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn never_holds_more_than_its_cap_and_keeps_the_newest() {
        let dir = temp_dir("cap");
        let path = dir.join("c.log");
        let c_path = CString::new(path.to_str().expect("utf-8")).expect("no NUL");
        let mut log = RotatingLog::open(&c_path, 100);
        for i in 0..50 {
            log.write(format!("line {i:02}\n").as_bytes());
        }
        let current = std::fs::read_to_string(&path).expect("current");
        let older = std::fs::read_to_string(dir.join("c.log.1")).expect("older");
        assert!(current.len() + older.len() <= 100, "{} + {}", current.len(), older.len());
        assert!(current.ends_with("line 49\n"), "{current}");
        let first: u32 = current
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("line "))
            .and_then(|n| n.parse().ok())
            .expect("a numbered line");
        assert!(
            older.ends_with(&format!("line {:02}\n", first - 1)),
            "the older file ends where the current begins"
        );

        // Reopened, it counts what is there.
        drop(log);
        let mut log = RotatingLog::open(&c_path, 100);
        log.write(&[b'x'; 45]);
        let current: String = std::fs::read_to_string(&path).expect("current");
        assert!(current.len() <= 50, "{}", current.len());
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn a_chunk_larger_than_half_the_cap_keeps_its_end() {
        let dir = temp_dir("big");
        let path = dir.join("c.log");
        let c_path = CString::new(path.to_str().expect("utf-8")).expect("no NUL");
        let mut log = RotatingLog::open(&c_path, 10);
        log.write(b"0123");
        log.write(b"0123456789abcdef");
        assert_eq!(std::fs::read(&path).expect("current"), b"bcdef");
        assert_eq!(std::fs::read(dir.join("c.log.1")).expect("older"), b"0123");
        // The next big chunk rotates a non-empty file, so the older one is never emptied.
        log.write(b"ABCDEFGHIJ");
        assert_eq!(std::fs::read(&path).expect("current"), b"FGHIJ");
        assert_eq!(std::fs::read(dir.join("c.log.1")).expect("older"), b"bcdef");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
