//! Running containers: a root of overlaid image layers, an OCI bundle, and a shim process per
//! container that libcontainer runs it from.
//!
//! ```text
//! RUN/containers/<id>/bundle/{config.json,rootfs/}   the bundle; rootfs is the overlay mount
//! RUN/containers/<id>/{shim.json,exit.json}          written by the shim and its reaper
//! RUN/libcontainer/<id>/                             libcontainer's own state
//! STATE/containers/<id>/{upper,work}/                the writable layer (on disk, not in RAM)
//! STATE/logs/<id>.log                                the container's output, capped
//! ```

pub mod cgroups;
pub mod exec;
pub mod logs;
pub mod reaper;
pub mod rootfs;
pub mod shim;
pub mod spec;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use nix::sys::signal::Signal;

use crate::fsutil::write_atomic;

/// How much output one container keeps (current and older file together).
pub const DEFAULT_LOG_MAX_BYTES: u64 = 2 << 20;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("container {id}: {path}: {source}")]
    Io {
        id: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("container {id}: {reason}")]
    Start { id: String, reason: String },
    #[error("container {id}: sending {signal}: {source}")]
    Signal { id: String, signal: Signal, source: nix::errno::Errno },
}

impl RuntimeError {
    fn io(id: &str, path: &Path) -> impl FnOnce(std::io::Error) -> RuntimeError + use<> {
        let (id, path) = (id.to_owned(), path.to_path_buf());
        move |source| RuntimeError::Io { id, path, source }
    }
}

/// Where one container's pieces live.
#[derive(Debug, Clone)]
pub struct ContainerPaths {
    pub status_dir: PathBuf,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// The writable layer's directory: overlayfs' `upper/` and `work/` inside it.
    pub writable: PathBuf,
    pub log: PathBuf,
}

/// What a container is doing, as its shim left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerStatus {
    /// Never started here, or gone with the run directory (a reboot).
    Absent,
    Running(shim::ShimState),
    Exited(shim::ExitInfo),
    /// Its shim died without recording an end (killed by hand): the end is unknown.
    Lost(shim::ShimState),
}

/// Whether process `pid` exists.
pub fn alive(pid: i32) -> bool {
    pid > 0 && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

fn kill_container(pid: i32, signal: Signal) -> Result<(), nix::errno::Errno> {
    if pid <= 1 {
        return Err(nix::errno::Errno::ESRCH);
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal)
}

/// Where container `id`'s output is kept.
pub fn log_path(state_dir: &Path, id: &str) -> PathBuf {
    state_dir.join("logs").join(format!("{id}.log"))
}

#[derive(Debug, Clone)]
pub struct Runtime {
    pub state_dir: PathBuf,
    pub run_dir: PathBuf,
    /// This binary, re-executed as the shim.
    pub agent_binary: PathBuf,
}

impl Runtime {
    /// The runtime of this binary, which is re-executed as each container's shim. Fails when
    /// there is no `bramble-reaper` for the shims to become.
    pub fn for_this_binary(state_dir: &Path, run_dir: &Path) -> Result<Runtime, reaper::ReaperError> {
        reaper::locate()?;
        let agent_binary = std::env::current_exe().map_err(reaper::ReaperError::NoExe)?;
        Ok(Runtime { state_dir: state_dir.to_path_buf(), run_dir: run_dir.to_path_buf(), agent_binary })
    }

    pub fn paths(&self, id: &str) -> ContainerPaths {
        let status_dir = self.status_dir(id);
        let bundle = status_dir.join("bundle");
        ContainerPaths {
            rootfs: bundle.join("rootfs"),
            bundle,
            status_dir,
            writable: self.state_dir.join("containers").join(id),
            log: log_path(&self.state_dir, id),
        }
    }

    /// Where the shim and reaper of container `id` write `shim.json` and `exit.json`.
    pub fn status_dir(&self, id: &str) -> PathBuf {
        self.run_dir.join("containers").join(id)
    }

    /// libcontainer's state root (for `exec` into a running container, too).
    pub fn state_root(&self) -> PathBuf {
        self.run_dir.join("libcontainer")
    }

    /// Prepares the root and bundle of container `id` from image `layers` (bottom first, from
    /// `ImageStore::layer_dirs`) and `config` (an OCI runtime spec), starts it through a shim,
    /// and returns its pid. A previous run of `id` must have been removed ([`Runtime::remove`]):
    /// a replaced container starts from the image.
    pub fn start(
        &self,
        id: &str,
        layers: &[PathBuf],
        config: &serde_json::Value,
    ) -> Result<i32, RuntimeError> {
        let paths = self.paths(id);
        let io = |path: &Path| RuntimeError::io(id, path);
        for dir in [&paths.status_dir, &self.state_root()] {
            fs::create_dir_all(dir).map_err(io(dir))?;
        }
        if let Some(dir) = paths.log.parent() {
            fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let (upper, work) = (paths.writable.join("upper"), paths.writable.join("work"));
        rootfs::mount_overlay(layers, &upper, &work, &paths.rootfs).map_err(io(&paths.rootfs))?;
        let config_path = paths.bundle.join("config.json");
        let bytes = serde_json::to_vec_pretty(config).expect("a JSON value serializes");
        write_atomic(&config_path, &bytes).map_err(io(&config_path))?;
        let output = Command::new(&self.agent_binary)
            .arg("shim")
            .arg("--id")
            .arg(id)
            .arg("--bundle")
            .arg(&paths.bundle)
            .arg("--root")
            .arg(self.state_root())
            .arg("--log")
            .arg(&paths.log)
            .arg("--log-max-bytes")
            .arg(DEFAULT_LOG_MAX_BYTES.to_string())
            .arg("--status-dir")
            .arg(&paths.status_dir)
            .arg("--notify")
            .arg(self.notify_socket())
            .args(config["linux"]["cgroupsPath"].as_str().map(|cgroup| format!("--cgroup={cgroup}")))
            .output()
            .map_err(io(&self.agent_binary))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        match stdout.trim().strip_prefix("started ").and_then(|p| p.parse::<i32>().ok()) {
            Some(pid) if output.status.success() => Ok(pid),
            _ => {
                let reason =
                    String::from_utf8_lossy(&output.stderr).trim().trim_start_matches("error: ").to_owned();
                let _ = rootfs::unmount(&paths.rootfs);
                Err(RuntimeError::Start { id: id.to_owned(), reason })
            }
        }
    }

    /// Where shims tell the agent that a container ended.
    pub fn notify_socket(&self) -> PathBuf {
        self.run_dir.join("agent.sock")
    }

    /// How the container ended, once its shim has recorded it.
    pub fn exit_info(&self, id: &str) -> Option<shim::ExitInfo> {
        let bytes = fs::read(self.status_dir(id).join(shim::EXIT_INFO)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn shim_state(&self, id: &str) -> Option<shim::ShimState> {
        let bytes = fs::read(self.status_dir(id).join(shim::SHIM_STATE)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// What container `id` is doing, from what its shim wrote (the run directory is the truth:
    /// it survives the agent, not a reboot).
    pub fn status(&self, id: &str) -> ContainerStatus {
        if let Some(exit) = self.exit_info(id) {
            return ContainerStatus::Exited(exit);
        }
        match self.shim_state(id) {
            None => ContainerStatus::Absent,
            Some(state) if alive(state.shim_pid) => ContainerStatus::Running(state),
            Some(state) => ContainerStatus::Lost(state),
        }
    }

    /// The ids of the containers the run directory holds.
    pub fn container_ids(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(self.run_dir.join("containers")) else { return Vec::new() };
        let mut ids: Vec<String> =
            entries.flatten().filter_map(|e| e.file_name().into_string().ok()).collect();
        ids.sort();
        ids
    }

    /// Sends `signal` to the container's main process.
    pub fn signal(&self, id: &str, signal: Signal) -> Result<(), RuntimeError> {
        let Some(state) = self.shim_state(id) else { return Ok(()) };
        match kill_container(state.container_pid, signal) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
            Err(e) => Err(RuntimeError::Signal { id: id.to_owned(), signal, source: e }),
        }
    }

    /// Removes everything of container `id` but its log: mount, cgroups, bundle, libcontainer's
    /// state, writable layer. A process left behind by a lost shim is killed first.
    pub fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let paths = self.paths(id);
        if let ContainerStatus::Lost(state) = self.status(id) {
            let _ = kill_container(state.container_pid, Signal::SIGKILL);
        }
        rootfs::unmount(&paths.rootfs).map_err(RuntimeError::io(id, &paths.rootfs))?;
        if let Some(cgroup) = shim::cgroup_path(&paths.bundle) {
            cgroups::remove_empty(&cgroup);
        }
        for dir in [&paths.status_dir, &self.state_root().join(id), &paths.writable] {
            match fs::remove_dir_all(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(RuntimeError::io(id, dir)(e)),
            }
        }
        Ok(())
    }
}
