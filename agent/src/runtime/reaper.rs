//! `bramble-reaper`, the small program each shim becomes once its container runs (see the
//! `bramble-reaper` crate). Board binaries carry it inside (`build.rs`, `cross/build-agent.sh`)
//! and run it from memory (memfd); other builds use the one next to this binary.

use std::ffi::{CStr, CString};
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use nix::sys::memfd::{MemFdCreateFlag, memfd_create};

/// The reaper built into this binary, or nothing (see `build.rs`).
static EMBEDDED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/bramble-reaper"));

const NAME: &str = "bramble-reaper";

#[derive(Debug, thiserror::Error)]
pub enum ReaperError {
    #[error("{NAME} is not built into this agent and {} does not exist (build it with `cargo build -p {NAME}`, or use the board binary from cross/build-agent.sh)", .0.display())]
    NotFound(PathBuf),
    #[error("cannot find this binary: {0}")]
    NoExe(std::io::Error),
    #[error("loading the built-in {NAME} into memory: {0}")]
    Load(nix::errno::Errno),
    #[error("running {NAME}: {0}")]
    Exec(nix::errno::Errno),
}

/// Where the reaper comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reaper {
    Embedded,
    File(PathBuf),
}

/// Finds the reaper: the built-in one, else `bramble-reaper` next to this binary.
pub fn locate() -> Result<Reaper, ReaperError> {
    if !EMBEDDED.is_empty() {
        return Ok(Reaper::Embedded);
    }
    let exe = std::env::current_exe().map_err(ReaperError::NoExe)?;
    let path = exe.with_file_name(NAME);
    if path.is_file() { Ok(Reaper::File(path)) } else { Err(ReaperError::NotFound(path)) }
}

/// A reaper ready to be executed: loaded before the container is created, so that a failure
/// leaves no container behind.
#[derive(Debug)]
pub enum Loaded {
    Memory(OwnedFd),
    File(CString),
}

impl Reaper {
    pub fn load(&self) -> Result<Loaded, ReaperError> {
        match self {
            Reaper::Embedded => {
                // MFD_EXEC keeps it executable where `vm.memfd_noexec` makes memfds noexec by
                // default (Linux 6.3+); older kernels do not know the flag (EINVAL).
                let exec = MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::from_bits_retain(libc::MFD_EXEC);
                let fd = match memfd_create(c"bramble-reaper", exec) {
                    Err(nix::errno::Errno::EINVAL) => {
                        memfd_create(c"bramble-reaper", MemFdCreateFlag::MFD_CLOEXEC)
                    }
                    other => other,
                }
                .map_err(ReaperError::Load)?;
                let mut file = std::fs::File::from(fd);
                std::io::Write::write_all(&mut file, EMBEDDED).map_err(|e| {
                    ReaperError::Load(nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
                })?;
                Ok(Loaded::Memory(file.into()))
            }
            Reaper::File(path) => CString::new(path.as_os_str().as_encoded_bytes())
                .map(Loaded::File)
                .map_err(|_| ReaperError::NotFound(path.clone())),
        }
    }
}

impl Loaded {
    /// Replaces this process (same pid, same children) with the reaper; returns only if that
    /// failed. `args` exclude the program's name.
    pub fn exec(&self, args: &[CString]) -> ReaperError {
        let mut argv: Vec<&CStr> = vec![c"bramble-reaper"];
        argv.extend(args.iter().map(CString::as_c_str));
        let env: [&CStr; 0] = [];
        let error = match self {
            Loaded::Memory(fd) => {
                nix::unistd::fexecve(std::os::fd::AsRawFd::as_raw_fd(fd), &argv, &env).err()
            }
            Loaded::File(path) => nix::unistd::execve(path, &argv, &env).err(),
        };
        ReaperError::Exec(error.unwrap_or(nix::errno::Errno::UnknownErrno))
    }
}
