use std::process::ExitCode;

fn main() -> ExitCode {
    bramble_cli::main()
}
