//! The health a board in a cluster sends: sampled from one `sysinfo` view made at start-up and
//! refreshed per sample (memory, CPU use since the last sample, the SoC sensor chosen once), and
//! the state disk by one statvfs.

use std::path::PathBuf;

use bramble_common::wire::NodeHealth;
use sysinfo::{Components, CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

use crate::fsutil::disk_space;
use crate::status::soc_sensor;

pub struct HealthMonitor {
    node: String,
    interval_ms: u64,
    /// When the next sample is due (ms of the daemon's clock).
    next_ms: u64,
    state_dir: PathBuf,
    system: Option<System>,
    components: Option<Components>,
    sensor: Option<usize>,
    cpus: u32,
}

impl std::fmt::Debug for HealthMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthMonitor").field("node", &self.node).finish_non_exhaustive()
    }
}

impl HealthMonitor {
    pub fn new(node: &str, state_dir: PathBuf, interval_ms: u64) -> HealthMonitor {
        let kinds = RefreshKind::nothing()
            .with_memory(MemoryRefreshKind::nothing().with_ram())
            .with_cpu(CpuRefreshKind::nothing().with_usage());
        let components = Components::new_with_refreshed_list().ok();
        let sensor = components.as_ref().and_then(|c| soc_sensor(c));
        HealthMonitor {
            node: node.to_owned(),
            interval_ms,
            next_ms: 0,
            state_dir,
            system: System::new_with_specifics(kinds).ok(),
            components,
            sensor,
            cpus: std::thread::available_parallelism()
                .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX)),
        }
    }

    pub fn next_ms(&self) -> u64 {
        self.next_ms
    }

    /// Whether a sample is due at `now_ms`; if so, the next one is an interval later.
    pub fn due(&mut self, now_ms: u64) -> bool {
        let due = now_ms >= self.next_ms;
        if due {
            self.next_ms = now_ms + self.interval_ms;
        }
        due
    }

    /// A sample now; CPU use is over the time since the previous sample.
    pub fn sample(&mut self, pods_running: u32, pods_total: u32) -> NodeHealth {
        let (memory_total, memory_available, cpu_percent) = match &mut self.system {
            Some(system) => {
                system.refresh_memory();
                system.refresh_cpu_usage();
                (system.total_memory(), system.available_memory(), system.global_cpu_usage())
            }
            None => (0, 0, 0.0),
        };
        let temperature = match (&mut self.components, self.sensor) {
            (Some(components), Some(i)) => {
                components[i].refresh();
                components[i].temperature()
            }
            _ => None,
        };
        let (disk_total, disk_available) = disk_space(&self.state_dir).unwrap_or((0, 0));
        NodeHealth {
            node: self.node.clone(),
            uptime_seconds: System::uptime().unwrap_or(0),
            cpus: self.cpus,
            cpu_percent,
            memory_total_bytes: memory_total,
            memory_available_bytes: memory_available,
            disk_total_bytes: disk_total,
            disk_available_bytes: disk_available,
            temperature_celsius: temperature,
            pods_running,
            pods_total,
        }
    }
}
