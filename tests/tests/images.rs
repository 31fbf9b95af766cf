//! The agent's image store with images made by other tools: umoci (an OCI layout with a
//! multi-arch index), skopeo (`docker save` archives) and tar (an OCI archive).

use std::fs;
use std::path::Path;
use std::process::Command;

use bramble_tests::{binary, busybox_layout, require_root, require_tool, run, text};

struct Agent {
    state: tempfile::TempDir,
}

impl Agent {
    fn new() -> Agent {
        require_root();
        Agent { state: tempfile::tempdir().expect("state dir") }
    }

    fn image(&self, args: &[&str]) -> (bool, String, String) {
        let output = run(Command::new(binary("bramble-agent"))
            .arg("image")
            .arg("--state-dir")
            .arg(self.state.path())
            .args(args));
        let (stdout, stderr) = text(&output);
        (output.status.success(), stdout, stderr)
    }

    fn count(&self, dir: &str) -> usize {
        fs::read_dir(self.state.path().join("images").join(dir)).map(|d| d.count()).unwrap_or(0)
    }
}

fn skopeo_docker_archive(arch: &str, tag: &str, out: &Path) {
    require_tool("skopeo");
    let from = format!("oci:{}:latest", busybox_layout().display());
    let to = format!("docker-archive:{}:{tag}", out.display());
    let output = run(Command::new("skopeo").args(["copy", "-q", "--override-arch", arch, &from, &to]));
    assert!(output.status.success(), "skopeo: {:?}", text(&output));
}

/// The ELF machine of the unpacked busybox: the platform really chosen.
fn busybox_machine(agent: &Agent) -> u16 {
    let layers = agent.state.path().join("images/layers");
    let layer = fs::read_dir(&layers).expect("layers").next().expect("one layer").expect("entry").path();
    let elf = fs::read(layer.join("bin/busybox")).expect("busybox in the layer");
    u16::from_le_bytes([elf[18], elf[19]])
}

const EM_X86_64: u16 = 62;

#[test]
fn a_multi_arch_oci_layout_imports_the_boards_platform() {
    let agent = Agent::new();
    let layout = busybox_layout();
    let (ok, stdout, stderr) = agent.image(&["import", &layout.display().to_string()]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.starts_with("imported docker.io/library/busybox:latest (linux/amd64, 1 layers, "),
        "{stdout}"
    );
    assert_eq!(busybox_machine(&agent), EM_X86_64, "the amd64 variant was unpacked");
    let (ok, stdout, _) = agent.image(&["ls"]);
    assert!(ok);
    assert!(
        stdout.lines().nth(1).is_some_and(|l| l.starts_with("docker.io/library/busybox:latest")),
        "{stdout}"
    );
    assert_eq!(agent.count("tmp"), 0, "no work left in tmp/");
}

#[test]
fn docker_save_archives_share_layers_with_the_same_image() {
    let agent = Agent::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let archive = dir.path().join("busybox.tar");
    skopeo_docker_archive("amd64", "busybox:1.35", &archive);
    let (ok, stdout, stderr) = agent.image(&["import", &archive.display().to_string()]);
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("imported docker.io/library/busybox:1.35 (linux/amd64"), "{stdout}");
    let (ok, _, stderr) = agent.image(&["import", &busybox_layout().display().to_string()]);
    assert!(ok, "{stderr}");
    assert_eq!(agent.count("records"), 2);
    assert_eq!(agent.count("layers"), 1, "the same layer, imported twice in two formats, is stored once");
}

#[test]
fn an_oci_archive_and_a_name_override_work() {
    let agent = Agent::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let archive = dir.path().join("busybox-oci.tar");
    let output = run(Command::new("tar").arg("-C").arg(busybox_layout()).arg("-cf").arg(&archive).arg("."));
    assert!(output.status.success());
    let (ok, stdout, stderr) = agent.image(&[
        "import",
        "--name",
        "registry.lan:5000/tools/busybox:v1",
        &archive.display().to_string(),
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("imported registry.lan:5000/tools/busybox:v1 (linux/amd64"), "{stdout}");
}

#[test]
fn an_image_for_another_platform_is_refused_with_the_reason() {
    let agent = Agent::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let archive = dir.path().join("busybox-arm64.tar");
    skopeo_docker_archive("arm64", "busybox:latest", &archive);
    let shown = archive.display().to_string();
    let (ok, _, stderr) = agent.image(&["import", &shown]);
    assert!(!ok);
    assert_eq!(stderr, format!("error: {shown}: no image for linux/amd64; it has linux/arm64\n"));
    assert_eq!(agent.count("records") + agent.count("layers") + agent.count("tmp"), 0, "nothing half-made");
}

#[test]
fn corrupt_and_truncated_images_leave_nothing_behind() {
    let agent = Agent::new();
    let dir = tempfile::tempdir().expect("temp dir");
    // A layout whose layer blobs have bytes flipped in the middle.
    let corrupt = dir.path().join("corrupt");
    let output = run(Command::new("cp").arg("-r").arg(busybox_layout()).arg(&corrupt));
    assert!(output.status.success());
    let mut flipped = 0;
    for entry in fs::read_dir(corrupt.join("blobs/sha256")).expect("blobs") {
        let path = entry.expect("entry").path();
        let mut bytes = fs::read(&path).expect("blob");
        if bytes.len() > 100_000 {
            let middle = bytes.len() / 2;
            bytes[middle..middle + 4].copy_from_slice(&[0, 0, 0, 0]);
            fs::write(&path, bytes).expect("write");
            flipped += 1;
        }
    }
    assert_eq!(flipped, 2, "both platforms' layers corrupted");
    let (ok, _, stderr) = agent.image(&["import", &corrupt.display().to_string()]);
    assert!(!ok);
    assert!(stderr.starts_with("error: layer sha256:"), "{stderr}");
    assert!(stderr.contains("corrupt") || stderr.contains("hashes to"), "{stderr}");
    assert_eq!(agent.count("records") + agent.count("layers") + agent.count("tmp"), 0, "nothing half-made");

    // A docker archive cut off halfway, as by a full disk or an interrupted copy.
    let archive = dir.path().join("whole.tar");
    skopeo_docker_archive("amd64", "busybox:latest", &archive);
    let bytes = fs::read(&archive).expect("archive");
    let cut = dir.path().join("cut.tar");
    fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    let (ok, _, stderr) = agent.image(&["import", &cut.display().to_string()]);
    assert!(!ok);
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert_eq!(
        agent.count("records") + agent.count("layers") + agent.count("tmp"),
        0,
        "nothing half-made: {stderr}"
    );
}

#[test]
fn removing_an_image_keeps_layers_others_use() {
    let agent = Agent::new();
    let layout = busybox_layout().display().to_string();
    assert!(agent.image(&["import", &layout]).0);
    assert!(agent.image(&["import", "--name", "busybox:copy", &layout]).0);
    let (ok, stdout, _) = agent.image(&["rm", "busybox"]);
    assert!(ok);
    assert_eq!(stdout, "removed docker.io/library/busybox:latest\n");
    assert_eq!(agent.count("layers"), 1, "still used by busybox:copy");
    assert!(agent.image(&["rm", "busybox:copy"]).0);
    assert_eq!(agent.count("layers"), 0);
    let (ok, _, stderr) = agent.image(&["rm", "busybox:copy"]);
    assert!(!ok);
    assert_eq!(stderr, "error: no image busybox:copy in the store\n");
}

#[test]
fn an_import_cut_off_midway_is_cleaned_up_at_the_next_start() {
    let agent = Agent::new();
    let tmp = agent.state.path().join("images/tmp/import-crashed/layer-x");
    fs::create_dir_all(&tmp).expect("leftover");
    fs::write(tmp.join("half"), b"half a layer").expect("leftover");
    let (ok, _, stderr) = agent.image(&["ls"]);
    assert!(ok, "{stderr}");
    assert_eq!(agent.count("tmp"), 0);
}
