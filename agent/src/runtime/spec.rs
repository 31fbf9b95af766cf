//! The OCI runtime `config.json` of one container, from its pod's spec and its image's config.
//! Pure: no IO, so every choice here is tested by table.

use bramble_common::objects::Container;
use serde_json::{Value, json};

use crate::image::RunConfig;

/// CFS period for CPU limits, as Kubernetes uses.
const CPU_PERIOD_MICROS: u64 = 100_000;
/// Processes a container may have unless told otherwise (a fork bomb stops here).
pub const DEFAULT_PIDS_LIMIT: i64 = 1024;

/// A bind mount into the container (volumes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    pub source: String,
    pub destination: String,
    pub read_only: bool,
}

/// Everything a container's spec is made from.
#[derive(Debug, Clone)]
pub struct SpecInput<'a> {
    pub container: &'a Container,
    pub image: &'a RunConfig,
    pub hostname: &'a str,
    /// Relative to the cgroup root: `bramble/<pod uid>/<container>`.
    pub cgroup_path: &'a str,
    pub binds: Vec<BindMount>,
    pub pids_limit: i64,
    /// The host's `/etc/resolv.conf`, bound into the container (host networking), when the host
    /// has one ([`host_resolv_conf`]).
    pub resolv_conf: Option<&'a str>,
}

/// The host's name resolution file, if it has one (a minimal board may not).
pub fn host_resolv_conf() -> Option<&'static str> {
    let path = "/etc/resolv.conf";
    std::path::Path::new(path).exists().then_some(path)
}

/// The process to run, as Kubernetes combines `command`/`args` with the image's
/// `Entrypoint`/`Cmd`: `command` replaces the entrypoint (and drops `Cmd`), `args` replaces `Cmd`.
pub fn process_args(container: &Container, image: &RunConfig) -> Vec<String> {
    match (container.command.is_empty(), container.args.is_empty()) {
        (false, _) => container.command.iter().chain(&container.args).cloned().collect(),
        (true, false) => image.entrypoint.iter().chain(&container.args).cloned().collect(),
        (true, true) => image.entrypoint.iter().chain(&image.cmd).cloned().collect(),
    }
}

/// The environment: the image's, then the pod's (which wins for the same name).
pub fn process_env(container: &Container, image: &RunConfig) -> Vec<String> {
    let mut env: Vec<String> = Vec::new();
    let mut set = |entry: String| {
        let name = entry.split('=').next().unwrap_or_default().to_owned();
        env.retain(|e| e.split('=').next() != Some(name.as_str()));
        env.push(entry);
    };
    if !image.env.iter().any(|e| e.starts_with("PATH=")) {
        set("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned());
    }
    for e in &image.env {
        set(e.clone());
    }
    for e in &container.env {
        set(format!("{}={}", e.name, e.value));
    }
    env
}

/// `uid[:gid]` of the image's `User`, when numeric (names need the image's /etc/passwd, which
/// the caller resolves).
pub fn numeric_user(user: Option<&str>) -> Option<(u32, u32)> {
    let user = user?;
    let (uid, gid) = user.split_once(':').unwrap_or((user, "0"));
    Some((uid.parse().ok()?, gid.parse().ok()?))
}

pub fn build(input: &SpecInput<'_>) -> Value {
    let c = input.container;
    let args = process_args(c, input.image);
    let cwd =
        c.working_dir.clone().or_else(|| input.image.working_dir.clone()).unwrap_or_else(|| "/".to_owned());
    let (uid, gid) = numeric_user(input.image.user.as_deref()).unwrap_or((0, 0));
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    ];
    if let Some(source) = input.resolv_conf {
        // Host networking: the host's name resolution.
        mounts.push(json!({"destination": "/etc/resolv.conf", "type": "bind", "source": source, "options": ["rbind", "ro"]}));
    }
    for bind in &input.binds {
        let mode = if bind.read_only { "ro" } else { "rw" };
        mounts.push(json!({"destination": bind.destination, "type": "bind", "source": bind.source, "options": ["rbind", mode]}));
    }
    let mut resources = json!({
        "devices": [{"allow": false, "access": "rwm"}],
        "pids": {"limit": input.pids_limit},
    });
    if let Some(limit) = &c.resources.limits.memory {
        resources["memory"] = json!({"limit": limit.value(), "swap": limit.value()});
    }
    let mut cpu = serde_json::Map::new();
    if let Some(limit) = &c.resources.limits.cpu {
        // 1000m = one CPU = one full period per period; at least 1 ms, as the kernel requires.
        let quota = (limit.millis() * CPU_PERIOD_MICROS / 1000).max(1000);
        cpu.insert("quota".into(), json!(quota));
        cpu.insert("period".into(), json!(CPU_PERIOD_MICROS));
    }
    if let Some(request) = &c.resources.requests.cpu {
        // Kubernetes' shares: 1024 per CPU, at least 2.
        cpu.insert("shares".into(), json!((request.millis() * 1024 / 1000).max(2)));
    }
    if !cpu.is_empty() {
        resources["cpu"] = Value::Object(cpu);
    }
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": uid, "gid": gid},
            "args": args,
            "env": process_env(c, input.image),
            "cwd": cwd,
            "capabilities": capabilities(),
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true,
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": input.hostname,
        "mounts": mounts,
        "linux": {
            "cgroupsPath": input.cgroup_path,
            "resources": resources,
            // No network namespace: pods use the host's network until services bring their own.
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    })
}

/// Docker's default capability set (what Kubernetes containers get unless told otherwise).
fn capabilities() -> Value {
    let caps = [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE",
    ];
    json!({"bounding": caps, "effective": caps, "permitted": caps})
}

#[cfg(test)]
mod tests {
    use super::*;
    use bramble_common::objects::{EnvVar, ResourceList, ResourceRequirements};
    use bramble_common::quantity::Quantity;

    fn container(command: &[&str], args: &[&str]) -> Container {
        let mut c = Container::new("c", "busybox");
        c.command = command.iter().map(|s| (*s).to_owned()).collect();
        c.args = args.iter().map(|s| (*s).to_owned()).collect();
        c
    }

    fn image(entrypoint: &[&str], cmd: &[&str]) -> RunConfig {
        RunConfig {
            entrypoint: entrypoint.iter().map(|s| (*s).to_owned()).collect(),
            cmd: cmd.iter().map(|s| (*s).to_owned()).collect(),
            ..RunConfig::default()
        }
    }

    #[test]
    fn command_and_args_combine_as_in_kubernetes() {
        let img = image(&["/entry"], &["default"]);
        let cases: [(&[&str], &[&str], &[&str]); 4] = [
            (&[], &[], &["/entry", "default"]),
            (&[], &["mine"], &["/entry", "mine"]),
            (&["/bin/sh"], &[], &["/bin/sh"]),
            (&["/bin/sh"], &["-c", "x"], &["/bin/sh", "-c", "x"]),
        ];
        for (command, args, want) in cases {
            assert_eq!(process_args(&container(command, args), &img), want, "{command:?} {args:?}");
        }
    }

    #[test]
    fn pod_env_overrides_image_env() {
        let mut c = container(&[], &[]);
        c.env = vec![EnvVar { name: "MODE".into(), value: "pod".into() }];
        let img = RunConfig { env: vec!["PATH=/bin".into(), "MODE=image".into()], ..RunConfig::default() };
        assert_eq!(process_env(&c, &img), vec!["PATH=/bin", "MODE=pod"]);
        let bare = process_env(&container(&[], &[]), &RunConfig::default());
        assert!(bare[0].starts_with("PATH=/usr/local/sbin"), "{bare:?}");
    }

    #[test]
    fn limits_become_cgroup_settings() {
        let mut c = container(&["sh"], &[]);
        c.resources = ResourceRequirements {
            requests: ResourceList { cpu: Quantity::parse("250m").ok(), memory: None },
            limits: ResourceList { cpu: Quantity::parse("500m").ok(), memory: Quantity::parse("16Mi").ok() },
        };
        let spec = spec_of(&c, None);
        let r = &spec["linux"]["resources"];
        assert_eq!(r["cpu"]["quota"], 50_000);
        assert_eq!(r["cpu"]["period"], 100_000);
        assert_eq!(r["cpu"]["shares"], 256);
        assert_eq!(r["memory"]["limit"], 16 << 20);
        assert_eq!(r["pids"]["limit"], 64);
        assert_eq!(spec["linux"]["cgroupsPath"], "bramble/u/c");
        let namespaces: Vec<&str> = spec["linux"]["namespaces"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n["type"].as_str())
            .collect();
        assert!(!namespaces.contains(&"network"), "host networking");
    }

    /// The spec of container `c` of a pod `p` with a default image and a pids limit of 64.
    fn spec_of(c: &Container, resolv_conf: Option<&str>) -> Value {
        build(&SpecInput {
            container: c,
            image: &RunConfig::default(),
            hostname: "p",
            cgroup_path: "bramble/u/c",
            binds: vec![],
            pids_limit: 64,
            resolv_conf,
        })
    }

    #[test]
    fn the_hosts_resolv_conf_is_bound_only_when_it_has_one() {
        let c = container(&["sh"], &[]);
        let destinations = |resolv_conf| -> Vec<String> {
            let spec = spec_of(&c, resolv_conf);
            let mounts = spec["mounts"].as_array().cloned().unwrap_or_default();
            mounts.iter().filter_map(|m| m["destination"].as_str().map(str::to_owned)).collect()
        };
        assert!(destinations(Some("/etc/resolv.conf")).contains(&"/etc/resolv.conf".to_owned()));
        assert!(!destinations(None).contains(&"/etc/resolv.conf".to_owned()));
    }

    #[test]
    fn numeric_users_only() {
        assert_eq!(numeric_user(Some("1000:100")), Some((1000, 100)));
        assert_eq!(numeric_user(Some("65534")), Some((65534, 0)));
        assert_eq!(numeric_user(Some("nobody")), None);
        assert_eq!(numeric_user(None), None);
    }
}
