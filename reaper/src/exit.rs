//! How a container ended, as `exit.json` (the agent's `runtime::shim::ExitInfo`):
//! `{"exit_code":137,"signal":9,"oom_killed":true}`.

use core::ffi::CStr;
use core::fmt::Write;

use crate::sys::{self, Ended, Errno, Fd};
use crate::{Buf, with_suffix};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The exit code, or 128 + the signal, as shells and Kubernetes report it.
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub oom_killed: bool,
}

impl Exit {
    /// From how the child ended; a failed wait (it was not our child) is 255, unknown.
    pub fn new(ended: Result<Ended, Errno>, oom_killed: bool) -> Exit {
        let (exit_code, signal) = match ended {
            Ok(Ended::Exited(code)) => (code, None),
            Ok(Ended::Signaled(signal)) => (128 + signal, Some(signal)),
            Err(_) => (255, None),
        };
        Exit { exit_code, signal, oom_killed }
    }

    pub fn json(&self) -> Buf<96> {
        let mut out = Buf::new();
        // Three numbers and a bool always fit in 96 bytes.
        let _ = write!(out, "{{\"exit_code\":{},\"signal\":", self.exit_code);
        let _ = match self.signal {
            Some(signal) => write!(out, "{signal}"),
            None => out.write_str("null"),
        };
        let _ = write!(out, ",\"oom_killed\":{}}}", self.oom_killed);
        out
    }

    /// Writes the record to `path` atomically: a temp file beside it, fsync, rename, fsync of
    /// the directory.
    pub fn write(&self, path: &CStr) -> Result<(), Errno> {
        let too_long = |_| Errno(libc::ENAMETOOLONG);
        let mut temp = with_suffix(path, b".tmp").map_err(too_long)?;
        let temp = temp.c_str().map_err(too_long)?;
        let file = Fd::open(temp, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC, 0o644)?;
        let written = file.write_all(self.json().as_bytes()).and_then(|()| file.sync());
        drop(file);
        if let Err(e) = written.and_then(|()| sys::rename(temp, path)) {
            sys::unlink(temp);
            return Err(e);
        }
        let bytes = path.to_bytes();
        let mut dir: Buf<4352> = Buf::new();
        match bytes.iter().rposition(|b| *b == b'/') {
            Some(0) => dir.push(b"/"),
            Some(slash) => dir.push(&bytes[..slash]),
            None => dir.push(b"."),
        }
        .map_err(too_long)?;
        let dir = Fd::open(dir.c_str().map_err(too_long)?, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
        dir.sync()
    }
}

/// Whether a cgroup file counts an OOM kill: a line `oom_kill N` with N > 0 (v2 `memory.events`
/// and v1 `memory.oom_control` both have one). A missing or unreadable file counts none.
pub fn oom_kill_counted(path: &CStr) -> bool {
    let Ok(file) = Fd::open(path, libc::O_RDONLY, 0) else { return false };
    let mut text = [0u8; 4096];
    let Ok(n) = file.read_up_to(&mut text) else { return false };
    counts_oom_kill(&text[..n])
}

fn counts_oom_kill(text: &[u8]) -> bool {
    text.split(|b| *b == b'\n').any(|line| {
        line.strip_prefix(b"oom_kill ")
            .and_then(|n| core::str::from_utf8(n).ok())
            .and_then(|n| n.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::format;

    #[test]
    fn json_has_the_agents_field_names() {
        let killed = Exit::new(Ok(Ended::Signaled(9)), true);
        assert_eq!(killed.json().as_bytes(), br#"{"exit_code":137,"signal":9,"oom_killed":true}"#);
        let exited = Exit::new(Ok(Ended::Exited(3)), false);
        assert_eq!(exited.json().as_bytes(), br#"{"exit_code":3,"signal":null,"oom_killed":false}"#);
        let unknown = Exit::new(Err(Errno(libc::ECHILD)), false);
        assert_eq!(unknown.exit_code, 255);
    }

    #[test]
    fn oom_kills_are_read_from_v1_and_v2_files() {
        assert!(counts_oom_kill(b"low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n"));
        assert!(!counts_oom_kill(b"low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"));
        assert!(counts_oom_kill(b"oom_kill_disable 0\nunder_oom 0\noom_kill 2"));
        assert!(!counts_oom_kill(b"oom_kill_disable 1\nunder_oom 0\n"));
        assert!(!oom_kill_counted(c"/nonexistent/memory.events"));
    }

    #[test]
    fn writes_the_record_atomically() {
        let dir = std::env::temp_dir().join(format!("bramble-reaper-{}-exit", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = CString::new(dir.join("exit.json").to_str().expect("utf-8")).expect("no NUL");
        Exit::new(Ok(Ended::Exited(0)), false).write(&path).expect("written");
        Exit::new(Ok(Ended::Exited(1)), false).write(&path).expect("rewritten");
        let names: std::vec::Vec<_> =
            std::fs::read_dir(&dir).expect("list").flatten().map(|e| e.file_name()).collect();
        assert_eq!(names, ["exit.json"], "no temp file left");
        assert_eq!(
            std::fs::read(dir.join("exit.json")).expect("read"),
            br#"{"exit_code":1,"signal":null,"oom_killed":false}"#
        );
        let missing =
            CString::new(dir.join("no/such/dir/exit.json").to_str().expect("utf-8")).expect("no NUL");
        assert!(Exit::new(Ok(Ended::Exited(0)), false).write(&missing).is_err());
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
