//! Requests from the coordinator (`bramble logs`, `bramble exec`): each runs on a thread of its
//! own and answers in numbered chunks; a `cancel` stops a follow or a running exec. At most
//! [`MAX_ACTIVE`] run at once: a board with 512 MB does not start a thread per stray request.
//!
//! Where answers go is the [`Reply`] trait (the MQTT session at run time, a recorder in tests).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bramble_common::wire::{Action, MAX_CHUNK_BYTES, OutputStream, Request, Response};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::daemon::container_id;
use crate::daemon::records::PodStore;
use crate::log;
use crate::logs_cmd::{follow, locate, read_log};
use crate::runtime;

/// Requests that may run at once on one board.
pub const MAX_ACTIVE: usize = 16;

/// Where the chunks of an answer go.
pub trait Reply: Send + Sync {
    /// Sends one chunk; false when it cannot be delivered (the request is then given up).
    fn send(&self, response: &Response) -> bool;
}

/// What serving a request needs to know about the board.
#[derive(Debug, Clone)]
pub struct Board {
    pub state_dir: PathBuf,
    /// This binary, for `exec-in`.
    pub agent_binary: PathBuf,
    /// libcontainer's state root.
    pub state_root: PathBuf,
}

/// The requests being served, by id, with the flag that cancels each.
#[derive(Debug)]
pub struct Requests {
    board: Board,
    active: Arc<Mutex<BTreeMap<String, Arc<AtomicBool>>>>,
}

impl Requests {
    pub fn new(board: Board) -> Requests {
        Requests { board, active: Arc::default() }
    }

    /// Starts serving `request` (or cancels the one it names); never blocks.
    pub fn handle(&self, request: Request, reply: Arc<dyn Reply>) {
        let Ok(mut active) = self.active.lock() else { return };
        if let Action::Cancel { id } = &request.action {
            if let Some(flag) = active.get(id) {
                flag.store(true, Ordering::Relaxed);
                log(format!("request {id}: cancelled"));
            }
            return;
        }
        // Every exec is logged: it is a way into a container.
        if let Action::Exec { command } = &request.action {
            log(format!(
                "request {}: exec in pod {}/{}: {command:?}",
                request.id, request.namespace, request.pod
            ));
        }
        let mut answer = Answer { id: request.id.clone(), seq: 0, reply };
        if active.contains_key(&request.id) {
            refuse(answer, format!("request {} is already running", request.id));
            return;
        }
        if active.len() >= MAX_ACTIVE {
            refuse(answer, format!("board busy: {MAX_ACTIVE} requests already running"));
            return;
        }
        let cancelled = Arc::new(AtomicBool::new(false));
        active.insert(request.id.clone(), Arc::clone(&cancelled));
        let (board, registry) = (self.board.clone(), Arc::clone(&self.active));
        let id = request.id.clone();
        let spawned = std::thread::Builder::new().name("request".into()).spawn(move || {
            serve(&board, request, &mut answer, &cancelled);
            if let Ok(mut active) = registry.lock() {
                active.remove(&answer.id);
            }
        });
        if let Err(e) = spawned {
            active.remove(&id);
            log(format!("request {id}: cannot start a thread: {e}"));
        }
    }
}

/// The chunks of one answer, numbered in order.
struct Answer {
    id: String,
    seq: u32,
    reply: Arc<dyn Reply>,
}

impl Answer {
    fn send(&mut self, response: Response) -> bool {
        let response = Response { id: self.id.clone(), seq: self.seq, ..response };
        self.seq += 1;
        self.reply.send(&response)
    }

    /// Sends `bytes` as text in chunks of at most [`MAX_CHUNK_BYTES`]; false if one was lost.
    fn data(&mut self, stream: Option<OutputStream>, text: &mut Utf8Text, bytes: &[u8]) -> bool {
        for part in bytes.chunks(MAX_CHUNK_BYTES) {
            let data = text.push(part);
            if !data.is_empty() && !self.send(Response { data, stream, ..Response::default() }) {
                return false;
            }
        }
        true
    }

    fn done(&mut self, exit_code: Option<i32>) {
        self.send(Response { done: true, exit_code, ..Response::default() });
    }

    fn fail(&mut self, error: String) {
        self.send(Response { done: true, error: Some(error), ..Response::default() });
    }
}

/// Answers `error` from a thread of its own: the caller is the MQTT session's thread, which must
/// never wait for room in its own queue.
fn refuse(mut answer: Answer, error: String) {
    let spawned = std::thread::Builder::new().name("request".into()).spawn(move || answer.fail(error));
    if let Err(e) = spawned {
        log(format!("cannot answer a request: {e}"));
    }
}

fn serve(board: &Board, request: Request, answer: &mut Answer, cancelled: &AtomicBool) {
    let store = PodStore::new(&board.state_dir);
    let located = locate(&store, &request.namespace, &request.pod, request.container.as_deref());
    let (record, container) = match located {
        Ok(found) => found,
        Err(e) => return answer.fail(e),
    };
    // A first, empty chunk: the container is found, so the coordinator's wait for the board's
    // answer ends even if the container says nothing for a long while.
    if !answer.send(Response::default()) {
        return;
    }
    let id = container_id(&record.uid, &container);
    let result = match request.action {
        Action::Logs { tail, follow: keep_following } => {
            let path = runtime::log_path(&board.state_dir, &id);
            let mut text = Utf8Text::default();
            read_log(&path, tail.map(|n| n as usize)).and_then(|bytes| {
                if !answer.data(None, &mut text, &bytes) || !keep_following {
                    return Ok(None);
                }
                follow(
                    &path,
                    || !cancelled.load(Ordering::Relaxed) && store.exists(&record.uid),
                    |bytes| !cancelled.load(Ordering::Relaxed) && answer.data(None, &mut text, bytes),
                )
                .map(|()| None)
            })
        }
        Action::Exec { command } => exec(board, &id, &command, answer, cancelled).map(Some),
        Action::Cancel { .. } => Ok(None),
    };
    match result {
        Ok(exit_code) => answer.done(exit_code),
        Err(e) => answer.fail(e),
    }
}

/// Runs `command` in container `id` through `bramble-agent exec-in`, sending its output as it
/// comes; kills it when cancelled (the answer is then an exit code of 137).
fn exec(
    board: &Board,
    id: &str,
    command: &[String],
    answer: &mut Answer,
    cancelled: &AtomicBool,
) -> Result<i32, String> {
    if command.is_empty() {
        return Err("exec: no command".to_owned());
    }
    let mut child = runtime::exec::exec_in_command(&board.agent_binary, &board.state_root, id, command)
        .spawn()
        .map_err(|e| format!("exec {}: {e}", board.agent_binary.display()))?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err("exec: no pipes to the command".to_owned());
    };
    // Each output until its end; a closed one leaves the poll set, which would report it forever.
    let mut outputs = vec![
        (OutputStream::Stdout, File::from(OwnedFd::from(stdout)), Utf8Text::default()),
        (OutputStream::Stderr, File::from(OwnedFd::from(stderr)), Utf8Text::default()),
    ];
    let mut buf = vec![0u8; 16 * 1024];
    let mut lost = false;
    while !outputs.is_empty() && !lost {
        if cancelled.load(Ordering::Relaxed) {
            let _ = child.kill();
            break;
        }
        let mut fds: Vec<PollFd> =
            outputs.iter().map(|(_, file, _)| PollFd::new(file.as_fd(), PollFlags::POLLIN)).collect();
        match poll(&mut fds, PollTimeout::from(200u16)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("exec: poll: {e}"));
            }
        }
        let ready: Vec<bool> = fds.iter().map(|fd| fd.any().unwrap_or(true)).collect();
        drop(fds);
        let mut ended = Vec::new();
        for (index, (stream, file, text)) in outputs.iter_mut().enumerate() {
            if !ready[index] {
                continue;
            }
            match file.read(&mut buf) {
                Ok(0) | Err(_) => ended.push(index),
                Ok(n) => lost |= !answer.data(Some(*stream), text, &buf[..n]),
            }
        }
        for index in ended.into_iter().rev() {
            outputs.remove(index);
        }
    }
    if lost {
        let _ = child.kill();
    }
    // The command may run on with its outputs closed: a cancel still ends it.
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if cancelled.load(Ordering::Relaxed) => {
                let _ = child.kill();
            }
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(100)),
            Err(e) => return Err(format!("exec: waiting for the command: {e}")),
        }
    };
    use std::os::unix::process::ExitStatusExt;
    Ok(status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(9)))
}

/// Bytes to text across reads: a UTF-8 sequence cut by a read boundary waits for its end
/// instead of becoming two replacement characters.
#[derive(Debug, Default)]
struct Utf8Text {
    pending: Vec<u8>,
}

impl Utf8Text {
    fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        // An incomplete sequence at the end is at most 3 bytes; keep it for the next read.
        let valid_up_to = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => self.pending.len(),
        };
        let rest = self.pending.split_off(valid_up_to);
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending = rest;
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_waits_for_a_cut_sequence() {
        let mut text = Utf8Text::default();
        let snowman = "☃".as_bytes();
        assert_eq!(text.push(&[b'a', snowman[0]]), "a");
        assert_eq!(text.push(&snowman[1..]), "☃");
        assert_eq!(text.push(&[0xff, b'b']), "\u{fffd}b");
    }

    #[derive(Default)]
    struct Recorder(Mutex<Vec<Response>>);

    impl Reply for Recorder {
        fn send(&self, response: &Response) -> bool {
            self.0.lock().map(|mut r| r.push(response.clone())).is_ok()
        }
    }

    fn board(dir: &std::path::Path) -> Board {
        Board {
            state_dir: dir.to_owned(),
            agent_binary: PathBuf::from("/nonexistent/bramble-agent"),
            state_root: dir.join("containers"),
        }
    }

    fn request(id: &str, action: Action) -> Request {
        Request { id: id.into(), namespace: "default".into(), pod: "web-0".into(), container: None, action }
    }

    fn wait_for_done(recorder: &Recorder) -> Vec<Response> {
        for _ in 0..200 {
            let got = recorder.0.lock().map(|r| r.clone()).unwrap_or_default();
            if got.last().is_some_and(|r| r.done) {
                return got;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("no final chunk");
    }

    #[test]
    fn a_pod_not_on_the_board_is_one_final_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let requests = Requests::new(board(dir.path()));
        let recorder = Arc::new(Recorder::default());
        let first = request("r1", Action::Logs { tail: None, follow: false });
        requests.handle(first, recorder.clone());
        let got = wait_for_done(&recorder);
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].id.as_str(), got[0].seq), ("r1", 0));
        assert_eq!(got[0].error.as_deref(), Some("no pod default/web-0 on this board"));
    }

    #[test]
    fn too_many_at_once_are_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let requests = Requests::new(board(dir.path()));
        // Fill the table as running requests would.
        if let Ok(mut active) = requests.active.lock() {
            for i in 0..MAX_ACTIVE {
                active.insert(format!("busy-{i}"), Arc::default());
            }
        }
        let recorder = Arc::new(Recorder::default());
        let one_more = request("one-more", Action::Exec { command: vec!["true".into()] });
        requests.handle(one_more, recorder.clone());
        let got = wait_for_done(&recorder);
        assert_eq!(got[0].error.as_deref(), Some("board busy: 16 requests already running"));
        // A cancel of a running one sets its flag and answers nothing.
        let flag = requests.active.lock().ok().and_then(|a| a.get("busy-3").cloned()).expect("listed");
        let cancel = request("c", Action::Cancel { id: "busy-3".into() });
        requests.handle(cancel, recorder.clone());
        assert!(flag.load(Ordering::Relaxed));
        assert_eq!(recorder.0.lock().map(|r| r.len()).unwrap_or(0), 1);
    }
}
