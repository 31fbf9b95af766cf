//! The reaper's command line, written by the agent's shim (`runtime::shim` in the agent):
//!
//! ```text
//! bramble-reaper --id ID --pid PID --output-fd FD [--ready-fd FD] --log PATH
//!                --log-max-bytes N --exit-file PATH [--oom-file PATH]... [--notify PATH]
//!                [--state-file PATH]
//! ```
//!
//! `--state-file` is libcontainer's `state.json` of the container, removed once it has ended, so
//! that nothing joins a later process that reuses its pid.
//!
//! `--oom-file` names a cgroup file that counts OOM kills (`memory.events` on cgroup v2,
//! `memory.oom_control` on v1); missing ones are skipped, so the shim passes both.

use core::ffi::{CStr, c_int};
use core::fmt;

/// How many `--oom-file`s are kept.
pub const MAX_OOM_FILES: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args<'a> {
    pub id: &'a CStr,
    pub pid: i32,
    pub output_fd: c_int,
    pub ready_fd: Option<c_int>,
    pub log: &'a CStr,
    pub log_max_bytes: u64,
    pub exit_file: &'a CStr,
    oom_files: [Option<&'a CStr>; MAX_OOM_FILES],
    pub notify: Option<&'a CStr>,
    pub state_file: Option<&'a CStr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgError {
    Unknown(Token),
    MissingValue(&'static str),
    NotANumber(&'static str),
    Missing(&'static str),
    TooMany(&'static str),
    /// `--output-fd` and `--ready-fd` must be distinct and not stdio.
    BadDescriptors,
}

/// The start of an argument, for messages (no allocator to copy it whole).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    bytes: [u8; 32],
    len: usize,
}

impl Token {
    fn of(arg: &CStr) -> Token {
        let mut token = Token { bytes: [0; 32], len: 0 };
        let src = arg.to_bytes();
        token.len = src.len().min(token.bytes.len());
        token.bytes[..token.len].copy_from_slice(&src[..token.len]);
        token
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.bytes[..self.len].utf8_chunks() {
            f.write_str(chunk.valid())?;
            if !chunk.invalid().is_empty() {
                f.write_str("\u{fffd}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgError::Unknown(arg) => write!(f, "unknown argument \"{arg}\""),
            ArgError::MissingValue(flag) => write!(f, "{flag} needs a value"),
            ArgError::NotANumber(flag) => write!(f, "{flag} takes a number"),
            ArgError::Missing(flag) => write!(f, "{flag} is required"),
            ArgError::TooMany(flag) => write!(f, "{flag} given more than {MAX_OOM_FILES} times"),
            ArgError::BadDescriptors => {
                f.write_str("--output-fd and --ready-fd must be distinct descriptors above 2")
            }
        }
    }
}

/// What parsing found, complete or not: on an error the caller still learns the ready pipe
/// (to say what is wrong) and the pid (to end the container that has no parent then).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Parsed<'a> {
    id: Option<&'a CStr>,
    pub pid: Option<i32>,
    output_fd: Option<c_int>,
    pub ready_fd: Option<c_int>,
    log: Option<&'a CStr>,
    log_max_bytes: Option<u64>,
    pub exit_file: Option<&'a CStr>,
    oom_files: [Option<&'a CStr>; MAX_OOM_FILES],
    notify: Option<&'a CStr>,
    state_file: Option<&'a CStr>,
}

fn number<T: core::str::FromStr>(flag: &'static str, value: &CStr) -> Result<T, ArgError> {
    value.to_str().ok().and_then(|s| s.parse().ok()).ok_or(ArgError::NotANumber(flag))
}

fn set<'a>(slot: &mut Option<&'a CStr>, value: &'a CStr) -> Result<(), ArgError> {
    *slot = Some(value);
    Ok(())
}

impl<'a> Parsed<'a> {
    /// Reads the arguments after the program's name.
    pub fn from_args(args: impl IntoIterator<Item = &'a CStr>) -> (Parsed<'a>, Result<(), ArgError>) {
        let mut parsed = Parsed::default();
        let outcome = parsed.fill(args.into_iter());
        (parsed, outcome)
    }

    fn fill(&mut self, mut args: impl Iterator<Item = &'a CStr>) -> Result<(), ArgError> {
        const FLAGS: [&str; 10] = [
            "--id",
            "--pid",
            "--output-fd",
            "--ready-fd",
            "--log",
            "--log-max-bytes",
            "--exit-file",
            "--oom-file",
            "--notify",
            "--state-file",
        ];
        let mut error = None;
        while let Some(arg) = args.next() {
            let Some(flag) = FLAGS.iter().copied().find(|f| f.as_bytes() == arg.to_bytes()) else {
                error = error.or(Some(ArgError::Unknown(Token::of(arg))));
                continue;
            };
            let Some(value) = args.next() else {
                error = error.or(Some(ArgError::MissingValue(flag)));
                break;
            };
            let outcome = match flag {
                "--id" => set(&mut self.id, value),
                "--pid" => number(flag, value).map(|n| self.pid = Some(n)),
                "--output-fd" => number(flag, value).map(|n| self.output_fd = Some(n)),
                "--ready-fd" => number(flag, value).map(|n| self.ready_fd = Some(n)),
                "--log" => set(&mut self.log, value),
                "--log-max-bytes" => number(flag, value).map(|n| self.log_max_bytes = Some(n)),
                "--exit-file" => set(&mut self.exit_file, value),
                "--oom-file" => match self.oom_files.iter_mut().find(|slot| slot.is_none()) {
                    Some(slot) => set(slot, value),
                    None => Err(ArgError::TooMany(flag)),
                },
                "--notify" => set(&mut self.notify, value),
                _ => set(&mut self.state_file, value),
            };
            if let Err(e) = outcome {
                error = error.or(Some(e));
            }
        }
        error.map_or(Ok(()), Err)
    }

    /// The arguments, when every required one is there.
    pub fn complete(&self) -> Result<Args<'a>, ArgError> {
        let output_fd = self.output_fd.ok_or(ArgError::Missing("--output-fd"))?;
        if output_fd <= 2 || self.ready_fd.is_some_and(|ready| ready <= 2 || ready == output_fd) {
            return Err(ArgError::BadDescriptors);
        }
        Ok(Args {
            id: self.id.ok_or(ArgError::Missing("--id"))?,
            pid: self.pid.filter(|p| *p > 1).ok_or(ArgError::Missing("--pid"))?,
            output_fd,
            ready_fd: self.ready_fd,
            log: self.log.ok_or(ArgError::Missing("--log"))?,
            log_max_bytes: self.log_max_bytes.ok_or(ArgError::Missing("--log-max-bytes"))?,
            exit_file: self.exit_file.ok_or(ArgError::Missing("--exit-file"))?,
            oom_files: self.oom_files,
            notify: self.notify,
            state_file: self.state_file,
        })
    }
}

impl<'a> Args<'a> {
    pub fn oom_files(&self) -> impl Iterator<Item = &'a CStr> + '_ {
        self.oom_files.iter().flatten().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::string::ToString;
    use std::vec::Vec;

    fn parse(words: &str) -> (Parsed<'static>, Result<(), ArgError>) {
        let owned: Vec<CString> =
            words.split_whitespace().map(|w| CString::new(w).expect("no NUL")).collect();
        let leaked: &'static [CString] = owned.leak();
        Parsed::from_args(leaked.iter().map(CString::as_c_str))
    }

    const FULL: &str = "--id p_c --pid 42 --output-fd 5 --ready-fd 6 --log /l/p_c.log \
                        --log-max-bytes 2097152 --exit-file /r/exit.json \
                        --oom-file /cg/memory.events --oom-file /cg1/memory.oom_control --notify /r/agent.sock \
                        --state-file /r/lc/p_c/state.json";

    #[test]
    fn reads_every_flag() {
        let (parsed, outcome) = parse(FULL);
        assert_eq!(outcome, Ok(()));
        let args = parsed.complete().expect("complete");
        assert_eq!(args.id, c"p_c");
        assert_eq!((args.pid, args.output_fd, args.ready_fd), (42, 5, Some(6)));
        assert_eq!((args.log, args.log_max_bytes), (c"/l/p_c.log", 2_097_152));
        assert_eq!(args.exit_file, c"/r/exit.json");
        let oom: Vec<&CStr> = args.oom_files().collect();
        assert_eq!(oom, [c"/cg/memory.events", c"/cg1/memory.oom_control"]);
        assert_eq!(args.notify, Some(c"/r/agent.sock"));
        assert_eq!(args.state_file, Some(c"/r/lc/p_c/state.json"));
    }

    #[test]
    fn optional_flags_may_be_left_out() {
        let (parsed, outcome) =
            parse("--id a --pid 7 --output-fd 3 --log /l --log-max-bytes 10 --exit-file /e");
        assert_eq!(outcome, Ok(()));
        let args = parsed.complete().expect("complete");
        assert_eq!((args.ready_fd, args.notify, args.oom_files().count()), (None, None, 0));
    }

    #[test]
    fn names_what_is_wrong_and_still_knows_the_pid_and_ready_pipe() {
        let (parsed, outcome) = parse("--ready-fd 9 --pid 42 --colour red --log-max-bytes lots");
        assert_eq!(outcome.map_err(|e| e.to_string()), Err("unknown argument \"--colour\"".to_string()));
        assert_eq!((parsed.ready_fd, parsed.pid), (Some(9), Some(42)));
        assert_eq!(parsed.complete().map_err(|e| e.to_string()), Err("--output-fd is required".to_string()));

        let (_, outcome) = parse("--pid 4x");
        assert_eq!(outcome, Err(ArgError::NotANumber("--pid")));
        let (_, outcome) = parse("--id");
        assert_eq!(outcome, Err(ArgError::MissingValue("--id")));
        let (_, outcome) = parse("--oom-file a --oom-file b --oom-file c --oom-file d --oom-file e");
        assert_eq!(outcome, Err(ArgError::TooMany("--oom-file")));
    }

    #[test]
    fn refuses_descriptors_that_are_stdio_or_the_same() {
        for (from, to) in [
            ("--output-fd 5", "--output-fd 2"),
            ("--ready-fd 6", "--ready-fd 5"),
            ("--ready-fd 6", "--ready-fd 0"),
        ] {
            let (parsed, _) = parse(&FULL.replace(from, to));
            assert_eq!(parsed.complete(), Err(ArgError::BadDescriptors), "{to}");
        }
    }

    #[test]
    fn refuses_pid_one_or_less() {
        let (parsed, _) = parse(&FULL.replace("--pid 42", "--pid 1"));
        assert_eq!(parsed.complete(), Err(ArgError::Missing("--pid")));
    }
}
