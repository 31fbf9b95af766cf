use std::process::ExitCode;

fn main() -> ExitCode {
    bramble_agent::main()
}
