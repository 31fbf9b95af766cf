//! Running containers: a root of overlaid image layers, an OCI bundle, and a shim process per
//! container that libcontainer runs it from.
//!
//! ```text
//! RUN/containers/<id>/bundle/{config.json,rootfs/}   the bundle; rootfs is the overlay mount
//! RUN/containers/<id>/{shim.json,exit.json}          written by the shim
//! RUN/libcontainer/<id>/                             libcontainer's own state
//! STATE/containers/<id>/{upper,work}/                the writable layer (on disk, not in RAM)
//! STATE/logs/<id>.log                                the container's output, capped
//! ```

pub mod cgroups;
pub mod logs;
pub mod rootfs;
pub mod shim;
pub mod spec;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

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
    pub id: String,
    pub status_dir: PathBuf,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// The writable layer's directory: `upper/` and `work/` inside it.
    pub writable: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub log: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Runtime {
    pub state_dir: PathBuf,
    pub run_dir: PathBuf,
    /// This binary, re-executed as the shim.
    pub agent_binary: PathBuf,
}

impl Runtime {
    pub fn paths(&self, id: &str) -> ContainerPaths {
        let status_dir = self.run_dir.join("containers").join(id);
        let bundle = status_dir.join("bundle");
        let writable = self.state_dir.join("containers").join(id);
        ContainerPaths {
            id: id.to_owned(),
            rootfs: bundle.join("rootfs"),
            bundle,
            status_dir,
            upper: writable.join("upper"),
            work: writable.join("work"),
            writable,
            log: self.state_dir.join("logs").join(format!("{id}.log")),
        }
    }

    fn libcontainer_root(&self) -> PathBuf {
        self.run_dir.join("libcontainer")
    }

    /// Prepares the root and bundle of container `id` from image `layers` (bottom first, from
    /// `ImageStore::layer_dirs`) and `config` (an OCI runtime
    /// spec), starts it through a shim, and returns its pid.
    pub fn start(
        &self,
        id: &str,
        layers: &[PathBuf],
        config: &serde_json::Value,
    ) -> Result<i32, RuntimeError> {
        let paths = self.paths(id);
        let io = |path: &Path| RuntimeError::io(id, path);
        // A fresh writable layer every start: a replaced container starts from the image.
        self.remove(id)?;
        for dir in [&paths.status_dir, &self.libcontainer_root()] {
            fs::create_dir_all(dir).map_err(io(dir))?;
        }
        if let Some(dir) = paths.log.parent() {
            fs::create_dir_all(dir).map_err(io(dir))?;
        }
        rootfs::mount_overlay(layers, &paths.upper, &paths.work, &paths.rootfs).map_err(io(&paths.rootfs))?;
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
            .arg(self.libcontainer_root())
            .arg("--log")
            .arg(&paths.log)
            .arg("--log-max-bytes")
            .arg(DEFAULT_LOG_MAX_BYTES.to_string())
            .arg("--status-dir")
            .arg(&paths.status_dir)
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

    /// How the container ended, once its shim has recorded it.
    pub fn exit_info(&self, id: &str) -> Option<shim::ExitInfo> {
        let bytes = fs::read(self.paths(id).status_dir.join(shim::EXIT_INFO)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Removes everything of container `id` but its log: mount, bundle, writable layer.
    pub fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let paths = self.paths(id);
        rootfs::unmount(&paths.rootfs).map_err(RuntimeError::io(id, &paths.rootfs))?;
        if let Some(cgroup) = shim::cgroup_path(&paths.bundle) {
            cgroups::remove_empty(&cgroup);
        }
        for dir in [&paths.status_dir, &paths.writable] {
            match fs::remove_dir_all(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(RuntimeError::io(id, dir)(e)),
            }
        }
        Ok(())
    }
}
