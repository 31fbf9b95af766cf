//! A real registry for tests and benchmarks: Debian's `docker-registry` on a free port, seeded
//! with `skopeo`.

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::{free_port, http_get, require_tool, run, spawn_logged, text, wait_until};

/// A `docker-registry` on a free port (all addresses), its storage in a temp dir; stopped on drop.
#[derive(Debug)]
pub struct Registry {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

impl Registry {
    pub fn start() -> Registry {
        require_tool("docker-registry");
        require_tool("skopeo");
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 0.0.0.0:{port}\n",
            dir.path().join("data").display()
        );
        fs::write(dir.path().join("config.yml"), config).expect("registry config");
        let mut registry = Registry { dir, port, child: None };
        registry.spawn();
        registry
    }

    pub fn spawn(&mut self) {
        let log = self.dir.path().join("registry.log");
        let child = spawn_logged(
            Command::new("docker-registry").arg("serve").arg(self.dir.path().join("config.yml")),
            &log,
        );
        self.child = Some(child);
        let port = self.port;
        wait_until(
            "the registry answering",
            Duration::from_secs(20),
            Duration::from_millis(100),
            || http_get(port, "/v2/").filter(|a| a.contains(" 200 ")),
            || fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default(),
        );
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `127.0.0.1:PORT/NAME`.
    pub fn image(&self, name: &str) -> String {
        format!("127.0.0.1:{}/{name}", self.port)
    }

    /// Copies an image into the registry with skopeo (`--all`: every platform).
    pub fn push(&self, from: &str, name: &str) {
        skopeo(&[
            "copy",
            "--all",
            "--quiet",
            "--dest-tls-verify=false",
            from,
            &format!("docker://{}", self.image(name)),
        ]);
    }

    /// A manifest as the registry serves it, and its digest.
    pub fn manifest(&self, reference: &str) -> (Value, String) {
        let output = skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}", self.image(reference)),
        ]);
        let digest = {
            use sha2::Digest;
            format!("sha256:{}", hex(&sha2::Sha256::digest(&output.stdout)))
        };
        (serde_json::from_slice(&output.stdout).expect("a JSON manifest"), digest)
    }

    /// Where the registry keeps blob `digest`.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir.path().join(format!("data/docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]))
    }
}

impl Registry {
    /// Pushes as `to` the image `from` (this machine's platform) with one more layer: `bytes`
    /// at `path`, added by umoci.
    pub fn push_with_file(&self, from: &str, to: &str, path: &str, bytes: &[u8]) {
        require_tool("umoci");
        let work = tempfile::tempdir().expect("work dir");
        let layout = work.path().join("oci");
        let base = format!("oci:{}:base", layout.display());
        skopeo(&[
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            &format!("docker://{}", self.image(from)),
            &base,
        ]);
        let file = work.path().join("file");
        fs::write(&file, bytes).expect("the new layer's file");
        let inserted = run(Command::new("umoci")
            .args(["insert", "--image"])
            .arg(format!("{}:base", layout.display()))
            .args(["--tag", "derived"])
            .arg(&file)
            .arg(path));
        assert!(inserted.status.success(), "umoci insert: {:?}", text(&inserted));
        self.push(&format!("oci:{}:derived", layout.display()), to);
    }
}

/// `n` bytes that do not compress (a xorshift generator), the same for the same `n`.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `skopeo ARGS`, which must succeed.
pub fn skopeo(args: &[&str]) -> Output {
    let output = run(Command::new("skopeo").args(args));
    assert!(output.status.success(), "skopeo {args:?}: {:?}", text(&output));
    output
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
