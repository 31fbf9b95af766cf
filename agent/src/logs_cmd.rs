//! `bramble-agent logs POD [-c CONTAINER] [-f] [--tail N]`: a container's output from its
//! capped log files (the older file first), as `kubectl logs` shows it.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::daemon::container_id;
use crate::daemon::records::{PodRecord, PodStore};
use crate::runtime::{self, logs::rotated};

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// The pod's name (for a Deployment's pods, as `status` lists them).
    pub pod: String,
    #[arg(short = 'n', long, default_value = bramble_common::objects::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// The container; may be left out when the pod has one.
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Keep printing what the container writes, until the pod is removed.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(long)]
    pub tail: Option<usize>,
}

pub fn run(state_dir: &Path, args: &LogsArgs) -> ExitCode {
    match show(state_dir, args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn show(state_dir: &Path, args: &LogsArgs) -> Result<(), String> {
    let store = PodStore::new(state_dir);
    let (record, container) = locate(&store, &args.namespace, &args.pod, args.container.as_deref())?;
    let path = runtime::log_path(state_dir, &container_id(&record.uid, &container));
    let text = read_log(&path, args.tail)?;
    let mut out = std::io::stdout().lock();
    out.write_all(&text).map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())?;
    if !args.follow {
        return Ok(());
    }
    drop(out);
    // A failed write means the reader went away.
    follow(
        &path,
        || store.exists(&record.uid),
        |bytes| {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes).and_then(|()| out.flush()).is_ok()
        },
    )
}

/// The record of pod `namespace/pod` on this board and the container meant: `container`, or the
/// pod's only one.
pub(crate) fn locate(
    store: &PodStore,
    namespace: &str,
    pod: &str,
    container: Option<&str>,
) -> Result<(PodRecord, String), String> {
    let record =
        store.find(namespace, pod).ok_or_else(|| format!("no pod {namespace}/{pod} on this board"))?;
    let names: Vec<&String> = record.containers.keys().collect();
    let container = match (container, names.as_slice()) {
        (Some(c), _) if record.containers.contains_key(c) => c.to_owned(),
        (Some(c), _) => {
            return Err(format!(
                "pod {}/{} has no container {c:?} (it has: {})",
                record.namespace,
                record.name,
                join(&names)
            ));
        }
        (None, [only]) => (*only).clone(),
        (None, _) => {
            return Err(format!(
                "pod {}/{} has several containers ({}): choose one with -c",
                record.namespace,
                record.name,
                join(&names)
            ));
        }
    };
    Ok((record, container))
}

fn join(names: &[&String]) -> String {
    names.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(", ")
}

/// A container's output from its log files (the older one first): all of it, or the last `tail`
/// lines.
pub(crate) fn read_log(path: &Path, tail: Option<usize>) -> Result<Vec<u8>, String> {
    let mut text = Vec::new();
    for file in [rotated(path), path.to_owned()] {
        if let Ok(mut f) = File::open(&file) {
            f.read_to_end(&mut text).map_err(|e| format!("{}: {e}", file.display()))?;
        }
    }
    if let Some(n) = tail {
        text.drain(..tail_start(&text, n));
    }
    Ok(text)
}

/// Where the last `n` lines of `text` begin.
fn tail_start(text: &[u8], n: usize) -> usize {
    if n == 0 {
        return text.len();
    }
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    body.iter().enumerate().rev().filter(|(_, b)| **b == b'\n').nth(n - 1).map_or(0, |(i, _)| i + 1)
}

/// Hands `sink` what is appended to `path` (following it across rotation) while `alive()`
/// holds and `sink` returns true.
pub(crate) fn follow(
    path: &Path,
    alive: impl Fn() -> bool,
    mut sink: impl FnMut(&[u8]) -> bool,
) -> Result<(), String> {
    let identity = |p: &Path| fs::metadata(p).ok().map(|m| (m.ino(), m.len()));
    let (mut inode, mut offset) = identity(path).unwrap_or((0, 0));
    let mut buf = vec![0u8; 8192];
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let Some((now_inode, len)) = identity(path) else {
            if !alive() {
                return Ok(());
            }
            continue;
        };
        if now_inode != inode || len < offset {
            (inode, offset) = (now_inode, 0);
        }
        if len > offset {
            let mut f = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
            f.seek(SeekFrom::Start(offset)).map_err(|e| e.to_string())?;
            loop {
                let n = f.read(&mut buf).map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                offset += n as u64;
                if !sink(&buf[..n]) {
                    return Ok(());
                }
            }
        } else if !alive() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tail_start;

    #[test]
    fn tail_counts_lines_from_the_end() {
        let text = b"a\nb\nc\n";
        assert_eq!(&text[tail_start(text, 2)..], b"b\nc\n");
        assert_eq!(&text[tail_start(text, 5)..], b"a\nb\nc\n");
        assert_eq!(&text[tail_start(text, 0)..], b"");
        assert_eq!(&b"a\nb"[tail_start(b"a\nb", 1)..], b"b");
    }
}
