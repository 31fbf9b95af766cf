//! What the agent remembers of each pod between its own restarts and the board's reboots:
//! restart counts, the last exit, a failed start. One JSON file per pod under
//! `STATE/pods/<uid>.json`, written atomically and only when it changes.
//!
//! Times named `*_ms` are milliseconds of `CLOCK_BOOTTIME` (monotonic, counts suspend, starts
//! at zero each boot); `*_at` are wall-clock seconds, for people only (a Pi has no RTC).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil::write_atomic;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodRecord {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub grace_ms: u64,
    /// The boot the `*_ms` times belong to.
    pub boot_id: String,
    pub containers: BTreeMap<String, ContainerRecord>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRecord {
    pub restarts: u32,
    pub crash_streak: u32,
    /// While a process runs: when it started.
    pub running_since_ms: Option<u64>,
    pub started_at: Option<u64>,
    pub last_exit: Option<ExitRecord>,
    /// The last start failed (cleared by a start that works).
    pub failure: Option<StartFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExitRecord {
    pub exit_code: i32,
    /// `Completed`, `Error`, `OOMKilled`, or `Lost` (the board or the shim went away).
    pub reason: String,
    pub finished_ms: u64,
    pub ran_ms: u64,
    pub finished_at: u64,
}

impl From<&ExitRecord> for crate::status::Terminated {
    fn from(exit: &ExitRecord) -> Self {
        crate::status::Terminated {
            exit_code: exit.exit_code,
            reason: exit.reason.clone(),
            finished_at: exit.finished_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartFailure {
    /// A Kubernetes-style reason word: `ImageNotPresent`, `HostPortInUse`, …
    pub reason: String,
    pub message: String,
    pub failed_ms: u64,
    pub attempts: u32,
}

impl ContainerRecord {
    /// Whether a process of this container ever ran (the next start is then a restart): one
    /// runs, or one ended.
    pub fn ever_started(&self) -> bool {
        self.running_since_ms.is_some() || self.last_exit.is_some()
    }
}

impl PodRecord {
    /// Makes the record's times fit boot `boot_id`: after a reboot the old boot's times mean
    /// nothing, so they become "long ago", and a process that was running is gone. Says
    /// whether anything changed.
    pub fn adopt_boot(&mut self, boot_id: &str) -> bool {
        if self.boot_id == boot_id {
            return false;
        }
        self.boot_id = boot_id.to_owned();
        for c in self.containers.values_mut() {
            if c.running_since_ms.take().is_some() {
                c.last_exit = Some(ExitRecord {
                    exit_code: 255,
                    reason: "Lost".into(),
                    finished_ms: 0,
                    ran_ms: 0,
                    finished_at: c.started_at.unwrap_or(0),
                });
            }
            if let Some(exit) = &mut c.last_exit {
                exit.finished_ms = 0;
            }
            if let Some(failure) = &mut c.failure {
                failure.failed_ms = 0;
            }
        }
        true
    }
}

/// The records on disk.
#[derive(Debug, Clone)]
pub struct PodStore {
    dir: PathBuf,
}

impl PodStore {
    pub fn new(state_dir: &Path) -> PodStore {
        PodStore { dir: state_dir.join("pods") }
    }

    fn path(&self, uid: &str) -> PathBuf {
        self.dir.join(format!("{uid}.json"))
    }

    /// Every readable record, and a message for each file that is not one.
    pub fn load_all(&self) -> (Vec<PodRecord>, Vec<String>) {
        let (mut records, mut problems) = (Vec::new(), Vec::new());
        let Ok(entries) = fs::read_dir(&self.dir) else { return (records, problems) };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            match fs::read(&path).map_err(|e| e.to_string()).and_then(|b| {
                serde_json::from_slice::<PodRecord>(&b).map_err(|e| format!("not a pod record: {e}"))
            }) {
                Ok(record) => records.push(record),
                Err(e) => problems.push(format!("{}: {e}", path.display())),
            }
        }
        records.sort_by(|a, b| a.uid.cmp(&b.uid));
        (records, problems)
    }

    /// Writes `record` if it differs from what is on disk.
    pub fn save(&self, record: &PodRecord) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let bytes = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
        write_atomic(&self.path(&record.uid), &bytes).map(|_| ())
    }

    pub fn delete(&self, uid: &str) -> io::Result<()> {
        match fs::remove_file(self.path(uid)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Whether pod `uid` still has a record (it has not been removed).
    pub fn exists(&self, uid: &str) -> bool {
        self.path(uid).exists()
    }

    /// Finds the record of pod `name` in `namespace`.
    pub fn find(&self, namespace: &str, name: &str) -> Option<PodRecord> {
        self.load_all().0.into_iter().find(|r| r.namespace == namespace && r.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_boot_turns_running_into_lost_and_old_times_into_long_ago() {
        let mut record = PodRecord {
            uid: "p-1".into(),
            namespace: "default".into(),
            name: "p".into(),
            grace_ms: 30_000,
            boot_id: "a".into(),
            containers: BTreeMap::from([(
                "c".to_owned(),
                ContainerRecord { running_since_ms: Some(9_000), ..Default::default() },
            )]),
        };
        let same = record.clone();
        assert!(!record.adopt_boot("a"));
        assert_eq!(record, same);
        assert!(record.adopt_boot("b"));
        let c = &record.containers["c"];
        assert_eq!(c.running_since_ms, None);
        let exit = c.last_exit.as_ref().expect("a lost exit");
        assert_eq!((exit.reason.as_str(), exit.finished_ms), ("Lost", 0));
    }

    #[test]
    fn records_round_trip_and_bad_files_are_reported_not_fatal() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = PodStore::new(dir.path());
        let record = PodRecord {
            uid: "p-1".into(),
            namespace: "default".into(),
            name: "p".into(),
            grace_ms: 1,
            boot_id: "a".into(),
            containers: BTreeMap::new(),
        };
        store.save(&record).expect("save");
        fs::write(dir.path().join("pods/broken.json"), b"{").expect("write");
        let (records, problems) = store.load_all();
        assert_eq!(records, vec![record.clone()]);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("broken.json"), "{problems:?}");
        assert_eq!(store.find("default", "p"), Some(record));
        store.delete("p-1").expect("delete");
        store.delete("p-1").expect("deleting twice is fine");
    }
}
