//! `bramble validate` and `bramble-agent validate` as a user runs them: real binaries, real
//! files, directories and standard input.

use std::fs;
use std::io::Write;
use std::process::{Command, Stdio};

use bramble_tests::{binary, run, text, workspace_root};

fn bramble(args: &[&str]) -> (i32, String, String) {
    let output = run(Command::new(binary("bramble")).args(args).current_dir(workspace_root()));
    let (stdout, stderr) = text(&output);
    (output.status.code().unwrap_or(-1), stdout, stderr)
}

#[test]
fn the_examples_validate_with_their_warnings() {
    let (code, stdout, stderr) = bramble(&["validate", "-f", "examples/"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("examples/nginx.yaml: document 1: Deployment default/nginx-deployment: 3 replicas of nginx:1.27.2\n"), "{stdout}");
    assert!(stdout.contains("examples/redis.yaml: document 2: Namespace cache\n"), "{stdout}");
    assert!(
        stdout.contains("  warning: spec.template.spec.containers[0].securityContext: not supported by bramble, ignored (line 48)\n"),
        "{stdout}"
    );
    assert!(stdout.ends_with("11 objects, 4 warnings, 0 errors\n"), "{stdout}");
}

#[test]
fn a_bad_manifest_fails_naming_file_document_object_and_field() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = fs::read_to_string(workspace_root().join("examples/hello.yaml")).expect("hello.yaml");
    let bad = format!(
        "{good}---\n{}",
        good.replace("name: hello", "name: hello-2").replace("memory: 16Mi", "memory: 12XB")
    );
    // The line the mistake is really on, whatever hello.yaml looks like.
    let line = bad.lines().position(|l| l.contains("12XB")).expect("the mistake") + 1;
    let path = dir.path().join("web.yaml");
    fs::write(&path, bad).expect("write");
    let shown = path.display().to_string();
    let (code, stdout, _) = bramble(&["validate", "-f", &shown]);
    assert_eq!(code, 1, "{stdout}");
    let want = format!(
        "error: {shown}: document 2: pod \"hello-2\": spec.containers[0].resources.limits.memory: invalid quantity \"12XB\" (line {line})\n"
    );
    assert!(stdout.contains(&want), "wanted {want}in\n{stdout}");
    assert!(
        stdout.contains(&format!("{shown}: document 1: Pod default/hello: busybox:latest\n")),
        "{stdout}"
    );
    assert!(stdout.ends_with("1 object, 0 warnings, 1 error\n"), "{stdout}");
}

#[test]
fn standard_input_is_read_with_dash() {
    let mut child = Command::new(binary("bramble"))
        .args(["validate", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("bramble starts");
    let hello = fs::read(workspace_root().join("examples/hello.yaml")).expect("hello.yaml");
    child.stdin.take().expect("stdin").write_all(&hello).expect("write stdin");
    let output = child.wait_with_output().expect("bramble ends");
    let (stdout, _) = text(&output);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.starts_with("<stdin>: document 1: Pod default/hello: busybox:latest\n"), "{stdout}");
}

#[test]
fn directories_are_read_in_name_order_and_recursively_with_r() {
    let dir = tempfile::tempdir().expect("temp dir");
    let nested = dir.path().join("apps");
    fs::create_dir(&nested).expect("mkdir");
    fs::copy(workspace_root().join("examples/hello.yaml"), nested.join("hello.yaml")).expect("copy");
    fs::write(nested.join("notes.txt"), "not a manifest").expect("write");
    let top = dir.path().display().to_string();

    let (code, stdout, _) = bramble(&["validate", "-f", &top]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains(&format!("error: {top}: no .yaml, .yml or .json files in the directory\n")),
        "{stdout}"
    );

    let (code, stdout, _) = bramble(&["validate", "-R", "-f", &top]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.ends_with("1 object, 0 warnings, 0 errors\n"), "{stdout}");
}

#[test]
fn unreadable_binary_and_oversized_files_are_clear_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let binary_file = dir.path().join("image.yaml");
    fs::write(&binary_file, b"apiVersion: v1\n\xff\xfe\x00").expect("write");
    let huge = dir.path().join("huge.yaml");
    fs::write(&huge, vec![b'#'; (8 << 20) + 10]).expect("write");
    let missing = dir.path().join("missing.yaml");
    let [binary_file, huge, missing] = [binary_file, huge, missing].map(|p| p.display().to_string());

    let (code, stdout, _) = bramble(&["validate", "-f", &binary_file, "-f", &huge, "-f", &missing]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains(&format!("error: {binary_file}: not UTF-8 text (byte 15)\n")), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "error: {huge}: is 8388609 bytes or more, over the 8388608 bytes a manifest may have\n"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("error: {missing}: cannot read: No such file or directory (os error 2)\n")),
        "{stdout}"
    );
    assert!(stdout.ends_with("0 objects, 0 warnings, 3 errors\n"), "{stdout}");
}

#[test]
fn the_agent_reports_exactly_what_the_cli_reports() {
    let files: Vec<String> = ["guestbook.yaml", "hello.yaml", "nginx.yaml", "redis.yaml"]
        .iter()
        .map(|f| format!("examples/{f}"))
        .collect();
    let agent =
        run(Command::new(binary("bramble-agent")).arg("validate").args(&files).current_dir(workspace_root()));
    let (agent_out, agent_err) = text(&agent);
    assert!(agent.status.success(), "{agent_out}{agent_err}");
    let mut cli_args = vec!["validate"];
    for f in &files {
        cli_args.extend(["-f", f.as_str()]);
    }
    let (code, cli_out, _) = bramble(&cli_args);
    assert_eq!(code, 0);
    assert_eq!(agent_out, cli_out);
}

#[test]
fn versions_and_bad_coordinator_flags_say_what_they_are() {
    let (code, stdout, _) = bramble(&["--version"]);
    assert_eq!((code, stdout.as_str()), (0, "bramble 0.1.0\n"));
    let agent = run(Command::new(binary("bramble-agent")).arg("--version"));
    assert_eq!(text(&agent).0, "bramble-agent 0.1.0\n");
    let coordinator = run(Command::new(binary("bramble-coordinator")).arg("--version"));
    assert_eq!(text(&coordinator).0, "bramble-coordinator 0.1.0\n");
    // A bad flag is refused before anything listens or is written.
    let dir = tempfile::tempdir().expect("temp dir");
    let (code, _, stderr) =
        bramble(&["coordinator", "--data-dir", &dir.path().display().to_string(), "--node-grace", "10"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("\"10\": expected a duration such as 10s"), "{stderr}");
    assert!(!dir.path().join("api-token").exists());
}
