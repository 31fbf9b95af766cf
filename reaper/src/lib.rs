//! `bramble-reaper`: what a container's shim becomes once the container runs.
//!
//! The agent's shim (`bramble-agent shim`, the full agent binary) creates and starts a container
//! through libcontainer, then replaces itself (exec, same pid) with this small program, which
//! stays the container's parent for the rest of its life, as conmon does for podman:
//!
//! 1. tells the launcher `ok <pid>` on the ready pipe;
//! 2. copies the container's output (one pipe for stdout and stderr, so their order holds) to
//!    its log, capped by rotating to one older file (`LOG.1`), half the cap each;
//! 3. reaps the container when its output ends (every process of the container is gone when
//!    its init, the pid namespace's first process, is);
//! 4. reads whether the kernel's OOM killer ended it (the container's memory cgroup);
//! 5. writes `exit.json` atomically (temp file, fsync, rename);
//! 6. sends the container's id as a datagram to the agent's socket (a wake-up; nobody listening
//!    is fine: a restarted agent reads `exit.json`).
//!
//! It is `no_std` in release builds (no allocator, no std runtime, musl linked statically) so
//! that one per container costs tens of kilobytes, not megabytes.

#![no_std]

#[cfg(test)]
extern crate std;

pub mod args;
pub mod exit;
pub mod log;
pub mod sys;

use core::ffi::CStr;

pub use args::{ArgError, Args};
pub use exit::Exit;

use sys::Fd;

/// A bounded byte buffer that formats into (no allocator here).
#[derive(Debug)]
pub struct Buf<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> Buf<N> {
    pub const fn new() -> Self {
        Buf { bytes: [0; N], len: 0 }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Appends `more`; fails (and keeps what it had) when it does not fit.
    pub fn push(&mut self, more: &[u8]) -> Result<(), core::fmt::Error> {
        let end = self.len.checked_add(more.len()).filter(|end| *end <= N).ok_or(core::fmt::Error)?;
        self.bytes[self.len..end].copy_from_slice(more);
        self.len = end;
        Ok(())
    }

    /// The bytes as a C string (with the NUL appended), for system calls.
    pub fn c_str(&mut self) -> Result<&CStr, core::fmt::Error> {
        if self.as_bytes().contains(&0) {
            return Err(core::fmt::Error);
        }
        self.push(b"\0")?;
        self.len -= 1;
        CStr::from_bytes_with_nul(&self.bytes[..=self.len]).map_err(|_| core::fmt::Error)
    }
}

impl<const N: usize> Default for Buf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> core::fmt::Write for Buf<N> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.push(s.as_bytes())
    }
}

/// A path built from `base` and a `suffix` (`LOG` + `.1`, `exit.json` + `.tmp`).
pub fn with_suffix(base: &CStr, suffix: &[u8]) -> Result<Buf<4352>, core::fmt::Error> {
    let mut path = Buf::new();
    path.push(base.to_bytes())?;
    path.push(suffix)?;
    Ok(path)
}

/// Does the whole job for a container that runs; returns the process's exit code.
pub fn run(args: &Args<'_>) -> i32 {
    sys::set_signal_dispositions();
    if let Some(ready) = args.ready_fd {
        let ready = Fd::inherited(ready);
        let mut line: Buf<32> = Buf::new();
        let _ = core::fmt::Write::write_fmt(&mut line, format_args!("ok {}\n", args.pid));
        // The launcher may be gone already; the container is ours to see through either way.
        let _ = ready.write_all(line.as_bytes());
    }
    let output = Fd::inherited(args.output_fd);
    let mut log = log::RotatingLog::open(args.log, args.log_max_bytes);
    let mut chunk = [0u8; 8192];
    while let Ok(n @ 1..) = output.read(&mut chunk) {
        log.write(&chunk[..n]);
    }
    drop(output);
    let ended = sys::wait(args.pid);
    if let Some(state) = args.state_file {
        // libcontainer's record of a process that is gone: nothing may join its pid later.
        sys::unlink(state);
    }
    let oom_killed = args.oom_files().any(exit::oom_kill_counted);
    let exit = Exit::new(ended, oom_killed);
    let written = exit.write(args.exit_file);
    if let Some(socket) = args.notify {
        let _ = sys::send_datagram(socket, args.id.to_bytes());
    }
    match written {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// What to do when the arguments are wrong (a reaper from another build): say so on the ready
/// pipe, so the agent's start fails with the reason, and end the container, which would
/// otherwise run without a parent that records its end; record that end if we know where.
pub fn refuse(error: &ArgError, parsed: &args::Parsed<'_>) -> i32 {
    sys::set_signal_dispositions();
    if let Some(ready) = parsed.ready_fd.filter(|fd| *fd > 2) {
        let mut line: Buf<256> = Buf::new();
        let _ = core::fmt::Write::write_fmt(&mut line, format_args!("error bramble-reaper: {error}\n"));
        let _ = Fd::inherited(ready).write_all(line.as_bytes());
    }
    if let Some(pid) = parsed.pid.filter(|pid| *pid > 1) {
        sys::kill(pid, libc::SIGKILL);
        let ended = sys::wait(pid);
        if let Some(exit_file) = parsed.exit_file {
            let _ = Exit::new(ended, false).write(exit_file);
        }
    }
    2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buf_refuses_what_does_not_fit_and_keeps_what_it_had() {
        let mut buf: Buf<8> = Buf::new();
        assert!(buf.push(b"12345").is_ok());
        assert!(buf.push(b"6789").is_err());
        assert_eq!(buf.as_bytes(), b"12345");
        assert_eq!(buf.c_str().map(CStr::to_bytes), Ok(&b"12345"[..]));
        let mut full: Buf<5> = Buf::new();
        assert!(full.push(b"12345").is_ok());
        assert!(full.c_str().is_err(), "no room for the NUL");
    }

    #[test]
    fn suffixes_make_sibling_paths() {
        let path = with_suffix(c"/var/lib/bramble/logs/a_b.log", b".1").expect("fits");
        assert_eq!(path.as_bytes(), b"/var/lib/bramble/logs/a_b.log.1");
    }
}
