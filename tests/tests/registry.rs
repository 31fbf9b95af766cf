//! Pulling images from a real registry: Debian's `docker-registry` on this machine, seeded with
//! `skopeo` from the multi-arch busybox layout (linux/amd64 and linux/arm64 under one index)
//! and an image made by `umoci` on top of it. `bramble-agent image pull` picks the board's
//! platform, pulls by tag or digest, rejects a corrupt blob without storing anything, resumes a
//! pull cut off by a registry restart, and fetches only the layers it does not have.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use bramble_tests::cluster::{
    Coordinator, DEPLOYMENT, Netns, delete_web_and_check_logs, join_boards_with_registry, until,
};
use bramble_tests::registry::{Registry, random_bytes, skopeo};
use bramble_tests::{binary, busybox_layout, require_root, require_tool, run, text, wait_until};

/// This machine's architecture as images name it, and another one the test image has.
fn architectures() -> (&'static str, &'static str) {
    if cfg!(target_arch = "aarch64") { ("arm64", "amd64") } else { ("amd64", "arm64") }
}

/// `bramble-agent image --state-dir STATE ARGS`, through `wrapper` (nsenter) when given.
fn agent(state: &Path, args: &[&str], wrapper: Option<&[&str]>) -> std::process::Output {
    run(&mut agent_command(state, args, wrapper))
}

fn agent_command(state: &Path, args: &[&str], wrapper: Option<&[&str]>) -> Command {
    let mut command = match wrapper {
        Some([program, rest @ ..]) => {
            let mut c = Command::new(program);
            c.args(rest).arg(binary("bramble-agent"));
            c
        }
        _ => Command::new(binary("bramble-agent")),
    };
    command.arg("image").arg("--state-dir").arg(state).args(args);
    command
}

fn pull(registry: &Registry, state: &Path, image: &str, extra: &[&str]) -> std::process::Output {
    let host = format!("127.0.0.1:{}", registry.port);
    let mut args = vec!["pull", "--insecure-registry", &host];
    args.extend_from_slice(extra);
    let image = registry.image(image);
    args.push(&image);
    agent(state, &args, None)
}

#[test]
fn pull_by_tag_and_by_digest_for_the_boards_platform() {
    let registry = Registry::start();
    registry.push(&format!("oci:{}:latest", busybox_layout().display()), "busybox:1");
    let (this_arch, other_arch) = architectures();
    let state = tempfile::tempdir().expect("state");

    let out = pull(&registry, state.path(), "busybox:1", &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let expected = format!(
        "pulled {} (linux/{this_arch}, 1 layers: 1 fetched, 0 already stored",
        registry.image("busybox:1")
    );
    assert!(stdout.starts_with(&expected), "{stdout}");

    // By the index's digest: the same image, nothing fetched again but the manifests.
    let (index, index_digest) = registry.manifest("busybox:1");
    assert_eq!(index["manifests"].as_array().map(Vec::len), Some(2), "a two-platform index: {index}");
    let by_digest = format!("busybox@{index_digest}");
    let out = pull(&registry, state.path(), &by_digest, &[]);
    assert!(text(&out).0.contains("1 layers: 0 fetched, 1 already stored"), "{:?}", text(&out));
    let listed = text(&agent(state.path(), &["ls"], None)).0;
    assert!(
        listed.contains(&registry.image("busybox:1")) && listed.contains(&registry.image(&by_digest)),
        "{listed}"
    );

    // Another platform of the same index is another image (its own layer).
    let other = tempfile::tempdir().expect("state");
    let platform = format!("linux/{other_arch}");
    let out = pull(&registry, other.path(), "busybox:1", &["--platform", &platform]);
    assert!(text(&out).0.contains(&format!("(linux/{other_arch}, 1 layers: 1 fetched")), "{:?}", text(&out));
    let ids =
        |listing: &str| listing.lines().nth(1).and_then(|l| l.split_whitespace().nth(2)).map(str::to_owned);
    assert_ne!(ids(&listed), ids(&text(&agent(other.path(), &["ls"], None)).0), "two platforms, two images");

    // Errors say what is wrong: a platform the index lacks, an unknown image.
    let none = pull(&registry, other.path(), "busybox:1", &["--platform", "linux/s390x"]);
    assert!(!none.status.success());
    let message = text(&none).1;
    assert!(message.contains("no image for linux/s390x; it has linux/amd64, linux/arm64"), "{message}");
    let unknown = pull(&registry, other.path(), "nosuch:1", &[]);
    assert!(text(&unknown).1.contains("manifest unknown"), "{:?}", text(&unknown));
}

#[test]
fn a_corrupt_blob_is_rejected_and_nothing_is_stored() {
    let registry = Registry::start();
    registry.push(&format!("oci:{}:latest", busybox_layout().display()), "busybox:1");
    let (this_arch, _) = architectures();
    let (index, _) = registry.manifest("busybox:1");
    let entry = index["manifests"]
        .as_array()
        .and_then(|m| m.iter().find(|e| e["platform"]["architecture"] == this_arch))
        .expect("this machine's platform in the index");
    let (manifest, _) = registry.manifest(&format!("busybox@{}", entry["digest"].as_str().expect("digest")));
    let layer = manifest["layers"][0]["digest"].as_str().expect("a layer").to_owned();
    // Same size, other bytes: only the digest can tell.
    let path = registry.blob_file(&layer);
    let mut bytes = fs::read(&path).expect("the layer blob");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(&path, bytes).expect("corrupt the blob");

    let state = tempfile::tempdir().expect("state");
    let out = pull(&registry, state.path(), "busybox:1", &[]);
    assert!(!out.status.success());
    let message = text(&out).1;
    assert!(message.contains(&format!("blob {layer}: its content hashes to sha256:")), "{message}");
    assert!(message.contains("the blob is corrupt"), "{message}");
    let listed = text(&agent(state.path(), &["ls"], None)).0;
    assert_eq!(listed.lines().count(), 1, "no image stored: {listed}");
    let layers = fs::read_dir(state.path().join("images/layers")).expect("layers dir").count();
    assert_eq!(layers, 0, "no layer stored");
    assert!(
        fs::read_dir(state.path().join("images/pulls")).map_or(0, |d| d.count()) == 0,
        "nothing left of the pull"
    );
}

#[test]
fn a_pull_cut_off_by_a_registry_restart_resumes_and_shared_layers_stay() {
    require_root();
    require_tool("ip");
    require_tool("tc");
    require_tool("nsenter");
    require_tool("umoci");
    let mut registry = Registry::start();
    registry.push(&format!("oci:{}:latest", busybox_layout().display()), "busybox:1");
    // An image of busybox plus a 24 MiB layer of random bytes, by umoci.
    registry.push_with_file("busybox:1", "big:1", "/big", &random_bytes(24 << 20));

    // The board is a network namespace whose link from the registry is held to 40 Mbit/s, so
    // the pull takes seconds and can be cut off halfway.
    let netns = Netns::new(31);
    let limited = run(Command::new("tc").args([
        "qdisc",
        "add",
        "dev",
        &netns.host_if,
        "root",
        "tbf",
        "rate",
        "40mbit",
        "burst",
        "32kbit",
        "latency",
        "400ms",
    ]));
    assert!(limited.status.success(), "tc: {:?}", text(&limited));
    let host = format!("{}:{}", netns.host_ip, registry.port);
    let nsenter = format!("--net=/run/netns/{}", netns.name);
    let wrapper: [&str; 2] = ["nsenter", &nsenter];
    let state = tempfile::tempdir().expect("state");
    let image = |name: &str| format!("{host}/{name}");

    let first =
        agent(state.path(), &["pull", "--insecure-registry", &host, &image("busybox:1")], Some(&wrapper));
    assert!(first.status.success(), "{:?}", text(&first));

    let stderr_path = state.path().join("pull.err");
    let pulling =
        agent_command(state.path(), &["pull", "--insecure-registry", &host, &image("big:1")], Some(&wrapper))
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&stderr_path).expect("stderr file"))
            .spawn()
            .expect("the pull starts");
    let partial = wait_until(
        "a blob fetched in part",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || partial_over(&state.path().join("images/pulls"), 2 << 20),
        || fs::read_to_string(&stderr_path).unwrap_or_default(),
    );
    registry.stop();
    std::thread::sleep(Duration::from_secs(2));
    registry.spawn();
    let output = pulling.wait_with_output().expect("the pull ends");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("trying again"), "the cut was seen and retried: {stderr}");
    assert!(stdout.contains("2 layers: 1 fetched, 1 already stored"), "busybox's layer is shared: {stdout}");
    let fetched: u64 = stdout
        .split(" bytes) over the network")
        .next()
        .and_then(|before| before.rsplit('(').next())
        .and_then(|n| n.parse().ok())
        .expect("bytes over the network in the summary");
    assert!(
        fetched < 30 << 20,
        "resumed from the {partial} bytes it had, not fetched twice (24 MiB layer): {fetched} bytes"
    );
    let listed = text(&agent(state.path(), &["ls"], None)).0;
    assert!(listed.contains(&image("big:1")), "{listed}");
}

/// Boards pull what the coordinator assigns them, pinned: a Deployment of an image in the
/// registry runs on two boards by the digest its tag named at apply (its layer was on them
/// already: only the manifests travel); the tag moves, and replicas added later still run the
/// pinned digest; an image the registry lacks is applied unpinned with a warning and waits in
/// ImagePullBackOff saying why.
#[test]
fn boards_pull_the_pinned_images_of_their_pods() {
    require_root();
    require_tool("ip");
    require_tool("nsenter");
    require_tool("umoci");
    let registry = Registry::start();
    registry.push(&format!("oci:{}:latest", busybox_layout().display()), "busybox:1");
    // Every board, and the coordinator, reach the registry at the host side of the first
    // board's link.
    let (coordinator, boards, host) = join_boards_with_registry(registry.port, 41..=42);

    let manifest = coordinator.dir.path().join("web.yaml");
    let deployment = DEPLOYMENT
        .replace("replicas: 6", "replicas: 2")
        .replace("busybox:latest", &format!("{host}/busybox:1"));
    fs::write(&manifest, deployment).expect("manifest");
    coordinator.bramble(&["apply", "-f", manifest.to_str().expect("utf-8 path")]);
    until(&coordinator, "both replicas Running from the pulled image", 60, || {
        coordinator.running_per_board().filter(|m| m.values().sum::<usize>() == 2 && m.len() == 2)
    });
    let (_, index_digest) = registry.manifest("busybox:1");
    let pinned = format!("{host}/busybox:1@{index_digest}");
    let images = |coordinator: &Coordinator| -> Vec<String> {
        let pods = coordinator.pods();
        pods.iter().filter_map(|p| p["spec"]["containers"][0]["image"].as_str().map(str::to_owned)).collect()
    };
    assert_eq!(images(&coordinator), [pinned.clone(), pinned.clone()], "the pods run the pinned digest");
    for board in &boards {
        let log = board.log();
        assert!(log.contains(&format!("pulled image {pinned}: 0 layers fetched, 1 already stored")), "{log}");
    }

    // The tag moves to another image; replicas added to the same revision still run the
    // digest it was applied with.
    let work = tempfile::tempdir().expect("work dir");
    let moved = format!("oci:{}:moved", work.path().join("oci").display());
    skopeo(&[
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{}", registry.image("busybox:1")),
        &moved,
    ]);
    let changed = run(Command::new("umoci")
        .args(["config", "--image"])
        .arg(moved.trim_start_matches("oci:"))
        .args(["--config.env", "MOVED=1"]));
    assert!(changed.status.success(), "{:?}", text(&changed));
    skopeo(&[
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        &moved,
        &format!("docker://{}", registry.image("busybox:1")),
    ]);
    assert_ne!(registry.manifest("busybox:1").1, index_digest, "the tag moved");
    coordinator.bramble(&["scale", "deployment/web", "--replicas", "4"]);
    until(&coordinator, "4 replicas Running", 60, || {
        coordinator.running_per_board().filter(|m| m.values().sum::<usize>() == 4)
    });
    assert_eq!(images(&coordinator), vec![pinned.clone(); 4], "new replicas run the pinned digest too");

    let missing = DEPLOYMENT
        .replace("name: web", "name: missing")
        .replace("{app: web}", "{app: missing}")
        .replace("replicas: 6", "replicas: 1")
        .replace("busybox:latest", &format!("{host}/nosuch:1"));
    let manifest = coordinator.dir.path().join("missing.yaml");
    fs::write(&manifest, missing).expect("manifest");
    let applied = run(&mut coordinator
        .command(&["apply", "-f", manifest.to_str().expect("utf-8 path")], &coordinator.api_token));
    let (out, err) = text(&applied);
    assert!(applied.status.success(), "{out}{err}");
    assert!(err.contains(&format!("Warning: image {host}/nosuch:1: not pinned to a digest")), "{err}");
    let pod = until(&coordinator, "the missing image's pod in ImagePullBackOff", 60, || {
        coordinator.pods().into_iter().find(|p| {
            p["metadata"]["name"].as_str().is_some_and(|n| n.starts_with("missing-"))
                && p["status"]["reason"] == "ImagePullBackOff"
        })
    });
    let message = pod["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("pull {host}/nosuch:1")) && message.contains("manifest unknown"),
        "{pod}"
    );
    coordinator.bramble(&["delete", "deployment/missing"]);
    delete_web_and_check_logs(&coordinator, &boards);
}

/// A `.partial` blob of more than `bytes` under `dir`, by its size.
fn partial_over(dir: &Path, bytes: u64) -> Option<u64> {
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "partial") {
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                if size > bytes {
                    return Some(size);
                }
            }
        }
    }
    None
}
