//! Pod and node status. The daemon writes [`AgentStatus`] to `RUN/status.json` (tmpfs: no SD
//! wear) when it changes; `bramble-agent status` reads it and adds the node's facts from
//! `sysinfo`, as a table or as JSON (`-o json`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::{Deserialize, Serialize};

use crate::fsutil::write_atomic;

/// Everything the daemon reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentStatus {
    pub agent_pid: u32,
    pub pods: Vec<PodStatus>,
    /// Manifest errors in the watched directory, one line each.
    #[serde(default)]
    pub manifest_errors: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// `Pending`, `Running`, `Succeeded`, `Failed`, or `Terminating`.
    pub phase: String,
    pub ready: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub containers: Vec<ContainerStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    pub name: String,
    pub ready: bool,
    pub restart_count: u32,
    pub state: State,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_state: Option<Terminated>,
    /// The latest probe failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_message: Option<String>,
    /// The last few ends of this container (bounded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_exits: Vec<Terminated>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum State {
    Waiting { reason: String, message: String },
    Running { pid: i32, started_at: u64 },
    Terminated(Terminated),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Terminated {
    pub exit_code: i32,
    pub reason: String,
    pub finished_at: u64,
}

pub fn status_path(run_dir: &Path) -> PathBuf {
    run_dir.join("status.json")
}

/// Writes the status if it changed.
pub fn write(run_dir: &Path, status: &AgentStatus) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(status).map_err(std::io::Error::other)?;
    write_atomic(&status_path(run_dir), &bytes).map(|_| ())
}

/// The board, as `sysinfo` sees it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeFacts {
    pub hostname: String,
    pub arch: &'static str,
    pub kernel: String,
    pub cpus: usize,
    pub memory_bytes: u64,
    pub memory_available_bytes: u64,
    /// The filesystem that holds the state directory.
    pub disk_mount: String,
    pub disk_bytes: u64,
    pub disk_available_bytes: u64,
    /// The SoC's (or first sensor's) temperature, where the board has a sensor.
    pub temperature_celsius: Option<f32>,
    pub uptime_seconds: u64,
}

pub fn node_facts(state_dir: &Path) -> NodeFacts {
    use sysinfo::{Components, Disks, System};
    let memory = memory();
    let disks = Disks::new_with_refreshed_list().ok();
    let state = std::fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
    let disk = disks.as_ref().and_then(|disks| {
        disks
            .iter()
            .filter(|d| state.starts_with(d.mount_point()))
            .max_by_key(|d| d.mount_point().as_os_str().len())
    });
    let components = Components::new_with_refreshed_list().ok();
    let temperature = components.as_ref().and_then(|c| soc_sensor(c).and_then(|i| c[i].temperature()));
    NodeFacts {
        hostname: System::host_name().unwrap_or_default(),
        arch: std::env::consts::ARCH,
        kernel: System::kernel_version().unwrap_or_default(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_bytes: memory.map_or(0, |m| m.0),
        memory_available_bytes: memory.map_or(0, |m| m.1),
        disk_mount: disk.map(|d| d.mount_point().display().to_string()).unwrap_or_default(),
        disk_bytes: disk.map_or(0, |d| d.total_space()),
        disk_available_bytes: disk.map_or(0, |d| d.available_space()),
        temperature_celsius: temperature,
        uptime_seconds: System::uptime().unwrap_or(0),
    }
}

/// The index of the SoC's (or first) temperature sensor.
pub fn soc_sensor(components: &[sysinfo::Component]) -> Option<usize> {
    components
        .iter()
        .position(|c| c.label().contains("cpu") || c.label().contains("soc"))
        .or_else(|| (!components.is_empty()).then_some(0))
}

/// Total and available memory in bytes.
fn memory() -> Option<(u64, u64)> {
    use sysinfo::{MemoryRefreshKind, RefreshKind, System};
    let system = System::new_with_specifics(
        RefreshKind::nothing().with_memory(MemoryRefreshKind::nothing().with_ram()),
    )
    .ok()?;
    Some((system.total_memory(), system.available_memory()))
}

/// The board's memory in bytes (for refusing pods that cannot fit); `u64::MAX` when unknown.
pub fn board_memory() -> u64 {
    memory().map_or(u64::MAX, |m| m.0)
}

/// `1.5Gi`-style sizes.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["", "Ki", "Mi", "Gi", "Ti"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes}") } else { format!("{value:.1}{}", UNITS[unit]) }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report<'a> {
    node: &'a NodeFacts,
    agent_running: bool,
    #[serde(flatten)]
    status: &'a AgentStatus,
}

/// `bramble-agent status [-o json]`.
pub fn command(state_dir: &Path, run_dir: &Path, json: bool) -> ExitCode {
    let node = node_facts(state_dir);
    let path = status_path(run_dir);
    let status: Option<AgentStatus> =
        std::fs::read(&path).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let running =
        status.as_ref().is_some_and(|s| i32::try_from(s.agent_pid).is_ok_and(crate::runtime::alive));
    let status = status.unwrap_or_default();
    if json {
        let report = Report { node: &node, agent_running: running, status: &status };
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
        return ExitCode::SUCCESS;
    }
    print!("{}", render(&node, running, &status));
    ExitCode::SUCCESS
}

fn render(node: &NodeFacts, running: bool, status: &AgentStatus) -> String {
    let mut out = String::new();
    let temp = node.temperature_celsius.map_or_else(|| "-".to_owned(), |t| format!("{t:.1}°C"));
    out.push_str(&format!(
        "node {}: {} {} cpus, memory {} free of {}, disk {} free of {} ({}), temperature {}, up {}\n",
        node.hostname,
        node.arch,
        node.cpus,
        human_bytes(node.memory_available_bytes),
        human_bytes(node.memory_bytes),
        human_bytes(node.disk_available_bytes),
        human_bytes(node.disk_bytes),
        node.disk_mount,
        temp,
        human_duration(node.uptime_seconds),
    ));
    if !running {
        out.push_str("agent: not running (the pods below are as it last saw them)\n");
    }
    for error in &status.manifest_errors {
        out.push_str(&format!("manifest error: {error}\n"));
    }
    let mut rows =
        vec![["NAMESPACE", "NAME", "PHASE", "READY", "RESTARTS", "LAST EXIT", "REASON"].map(String::from)];
    for pod in &status.pods {
        let ready = pod.containers.iter().filter(|c| c.ready).count();
        let restarts: u32 = pod.containers.iter().map(|c| c.restart_count).sum();
        let last_exit = pod
            .containers
            .iter()
            .filter_map(|c| match &c.state {
                State::Terminated(t) => Some(t),
                _ => c.last_state.as_ref(),
            })
            .max_by_key(|t| t.finished_at)
            .map_or_else(|| "-".to_owned(), |t| format!("{} ({})", t.exit_code, t.reason));
        let reason = match (&pod.reason, &pod.message) {
            (Some(r), Some(m)) => format!("{r}: {m}"),
            (Some(r), None) => r.clone(),
            (None, Some(m)) => m.clone(),
            (None, None) => String::new(),
        };
        rows.push([
            pod.namespace.clone(),
            pod.name.clone(),
            pod.phase.clone(),
            format!("{ready}/{}", pod.containers.len()),
            restarts.to_string(),
            last_exit,
            reason,
        ]);
    }
    let widths: Vec<usize> =
        (0..7).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    for row in rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn human_duration(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        s => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_like_kubectl() {
        assert_eq!(human_bytes(512), "512");
        assert_eq!(human_bytes(16 << 20), "16.0Mi");
        assert_eq!(human_duration(3_725), "1h2m");
        assert_eq!(human_duration(90_000), "1d1h");
    }

    #[test]
    fn the_table_names_phase_restarts_last_exit_and_reason() {
        let node = node_facts(Path::new("/"));
        let status = AgentStatus {
            agent_pid: 1,
            manifest_errors: vec![],
            pods: vec![PodStatus {
                namespace: "default".into(),
                name: "hello".into(),
                uid: "hello-1".into(),
                phase: "Pending".into(),
                ready: false,
                reason: Some("ImageNotPresent".into()),
                message: Some("image x is not in this board's image store".into()),
                containers: vec![ContainerStatus {
                    name: "c".into(),
                    ready: false,
                    restart_count: 2,
                    state: State::Waiting { reason: "ImageNotPresent".into(), message: String::new() },
                    last_state: Some(Terminated {
                        exit_code: 137,
                        reason: "OOMKilled".into(),
                        finished_at: 5,
                    }),
                    probe_message: None,
                    recent_exits: vec![],
                }],
            }],
        };
        let text = render(&node, true, &status);
        let row = text.lines().find(|l| l.starts_with("default")).expect("a pod row");
        let cells: Vec<&str> = row.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect();
        assert_eq!(cells[..6], ["default", "hello", "Pending", "0/1", "2", "137 (OOMKilled)"]);
        assert!(cells[6].starts_with("ImageNotPresent: image x"), "{row}");
    }
}
