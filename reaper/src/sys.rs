//! The few system calls the reaper makes, each behind a safe function. Nothing else in the
//! crate touches `libc` or raw pointers.
#![allow(unsafe_code)]

use core::ffi::{CStr, c_int};
use core::fmt;

/// A failed call's `errno`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub c_int);

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "errno {}", self.0)
    }
}

fn errno() -> Errno {
    // SAFETY: `__errno_location` returns this thread's errno slot, valid while the thread lives.
    Errno(unsafe { *libc::__errno_location() })
}

/// Runs `call` again while it fails with EINTR; a negative result becomes the errno.
fn retry<T: PartialOrd + Default>(mut call: impl FnMut() -> T) -> Result<T, Errno> {
    loop {
        let result = call();
        if result >= T::default() {
            return Ok(result);
        }
        let e = errno();
        if e.0 != libc::EINTR {
            return Err(e);
        }
    }
}

/// An open file descriptor, closed on drop.
#[derive(Debug)]
pub struct Fd(c_int);

impl Fd {
    /// Takes ownership of a descriptor this process inherited.
    pub fn inherited(fd: c_int) -> Fd {
        Fd(fd)
    }

    pub fn open(path: &CStr, flags: c_int, mode: libc::mode_t) -> Result<Fd, Errno> {
        // SAFETY: `path` is a valid NUL-terminated string for the duration of the call.
        retry(|| unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC, mode) }).map(Fd)
    }

    /// Reads once; `Ok(0)` is the end.
    pub fn read(&self, buf: &mut [u8]) -> Result<usize, Errno> {
        // SAFETY: the pointer and length describe `buf`, which the kernel may fill.
        let n = retry(|| unsafe { libc::read(self.0, buf.as_mut_ptr().cast(), buf.len()) })?;
        Ok(n.unsigned_abs())
    }

    /// Reads until `buf` is full or the end; returns how much was read.
    pub fn read_up_to(&self, buf: &mut [u8]) -> Result<usize, Errno> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.read(&mut buf[filled..])? {
                0 => break,
                n => filled += n,
            }
        }
        Ok(filled)
    }

    pub fn write_all(&self, mut bytes: &[u8]) -> Result<(), Errno> {
        while !bytes.is_empty() {
            // SAFETY: the pointer and length describe `bytes`, which the kernel only reads.
            let n = retry(|| unsafe { libc::write(self.0, bytes.as_ptr().cast(), bytes.len()) })?;
            if n == 0 {
                return Err(Errno(libc::EIO));
            }
            bytes = &bytes[n.unsigned_abs()..];
        }
        Ok(())
    }

    /// The file's size (its end's offset).
    pub fn size(&self) -> Result<u64, Errno> {
        // SAFETY: lseek on a descriptor we own; no memory is passed.
        let end = retry(|| unsafe { libc::lseek(self.0, 0, libc::SEEK_END) })?;
        Ok(end.unsigned_abs())
    }

    pub fn sync(&self) -> Result<(), Errno> {
        // SAFETY: fsync on a descriptor we own; no memory is passed.
        retry(|| unsafe { libc::fsync(self.0) }).map(drop)
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: the descriptor is ours and is not used after this.
        unsafe { libc::close(self.0) };
    }
}

pub fn rename(from: &CStr, to: &CStr) -> Result<(), Errno> {
    // SAFETY: both are valid NUL-terminated strings for the duration of the call.
    retry(|| unsafe { libc::rename(from.as_ptr(), to.as_ptr()) }).map(drop)
}

pub fn unlink(path: &CStr) {
    // SAFETY: `path` is a valid NUL-terminated string for the duration of the call.
    unsafe { libc::unlink(path.as_ptr()) };
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Exited(i32),
    Signaled(i32),
}

/// Waits for child `pid` to end and reaps it.
pub fn wait(pid: i32) -> Result<Ended, Errno> {
    let mut status: c_int = 0;
    loop {
        // SAFETY: `status` is a valid place for the kernel to store the child's status.
        retry(|| unsafe { libc::waitpid(pid, &mut status, 0) })?;
        if libc::WIFEXITED(status) {
            return Ok(Ended::Exited(libc::WEXITSTATUS(status)));
        }
        if libc::WIFSIGNALED(status) {
            return Ok(Ended::Signaled(libc::WTERMSIG(status)));
        }
    }
}

pub fn kill(pid: i32, signal: c_int) {
    if pid > 1 {
        // SAFETY: kill takes no memory; a pid that is gone only gives ESRCH.
        unsafe { libc::kill(pid, signal) };
    }
}

/// Sets the signal dispositions the reaper relies on, whatever it inherited: SIGPIPE ignored
/// (writing to a pipe nobody reads, a launcher that died, is an error to handle, not the end of
/// the container's parent) and SIGCHLD at its default (ignored, the kernel would reap the
/// container itself and its exit status would be lost).
pub fn set_signal_dispositions() {
    // SAFETY: SIG_IGN and SIG_DFL are valid dispositions; no handler code runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
    }
}

/// Sends one datagram to the Unix socket bound at `path`.
pub fn send_datagram(path: &CStr, bytes: &[u8]) -> Result<(), Errno> {
    // SAFETY: socket takes no memory; the descriptor is owned by `Fd` from here.
    let socket =
        Fd(retry(|| unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?);
    // SAFETY: sockaddr_un is plain data for which all zeroes is a valid (empty) value.
    let mut address: libc::sockaddr_un = unsafe { core::mem::zeroed() };
    address.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let path = path.to_bytes();
    if path.len() >= address.sun_path.len() {
        return Err(Errno(libc::ENAMETOOLONG));
    }
    for (slot, byte) in address.sun_path.iter_mut().zip(path) {
        *slot = *byte as libc::c_char;
    }
    let length = core::mem::offset_of!(libc::sockaddr_un, sun_path) + path.len() + 1;
    // SAFETY: `bytes` is readable for its length, and `address` is a sockaddr_un whose first
    // `length` bytes hold the family and the NUL-terminated path.
    retry(|| unsafe {
        libc::sendto(
            socket.0,
            bytes.as_ptr().cast(),
            bytes.len(),
            0,
            (&raw const address).cast(),
            length as libc::socklen_t,
        )
    })
    .map(drop)
}
