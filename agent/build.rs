//! Embeds `bramble-reaper` (the small program that stays each container's parent) when
//! `BRAMBLE_REAPER_EMBED` names a built one, as `cross/build-agent.sh` does for board binaries:
//! then a board needs this one file. Without it (a plain `cargo build`), the agent uses the
//! `bramble-reaper` next to its own binary (`runtime::reaper`).

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=BRAMBLE_REAPER_EMBED");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let embedded = out.join("bramble-reaper");
    let bytes = match std::env::var_os("BRAMBLE_REAPER_EMBED").filter(|p| !p.is_empty()) {
        Some(path) => {
            // A relative path is from the workspace root (where cross/build-agent.sh runs).
            let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
            let path = manifest_dir.parent().map_or(PathBuf::from(&path), |root| root.join(&path));
            println!("cargo:rerun-if-changed={}", path.display());
            match std::fs::read(&path) {
                Ok(bytes) if bytes.starts_with(b"\x7fELF") => bytes,
                Ok(_) => panic!("BRAMBLE_REAPER_EMBED={}: not an ELF binary", path.display()),
                Err(e) => panic!("BRAMBLE_REAPER_EMBED={}: {e}", path.display()),
            }
        }
        None => Vec::new(),
    };
    if std::fs::read(&embedded).ok().as_deref() != Some(&bytes[..]) {
        std::fs::write(&embedded, &bytes).expect("writing OUT_DIR/bramble-reaper");
    }
}
