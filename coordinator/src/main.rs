use std::process::ExitCode;

fn main() -> ExitCode {
    if std::env::args().any(|a| a == "--version" || a == "-V") {
        println!("bramble-coordinator {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    eprintln!("bramble-coordinator: {}", bramble_coordinator::NOT_BUILT);
    ExitCode::FAILURE
}
