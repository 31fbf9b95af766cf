//! `bramble-reaper`: see the library's documentation. Started only by the agent's shim.

// Release builds (panic = "abort") carry no std: tens of kilobytes per container. Debug builds
// keep std's panic machinery, which unwinding needs.
#![cfg_attr(panic = "abort", no_std)]
#![no_main]
#![allow(unsafe_code)]

use core::ffi::{CStr, c_char, c_int};

// The libc crate links musl's C library only as a dependency of std; without std, ask for it.
#[cfg(all(panic = "abort", target_env = "musl"))]
#[link(name = "c")]
unsafe extern "C" {}

#[cfg(panic = "abort")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // SAFETY: abort takes nothing and does not return.
    unsafe { libc::abort() }
}

/// The C entry point (`no_main`: no std runtime to set up).
///
/// # Safety
///
/// Called by the C runtime only, with `argc` valid strings in `argv`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    let count = usize::try_from(argc).unwrap_or(0);
    let args = (1..count).map(|i| {
        // SAFETY: the C runtime passes `argc` valid pointers to NUL-terminated strings in
        // `argv`, which live as long as the process.
        unsafe { CStr::from_ptr(*argv.add(i)) }
    });
    let (parsed, outcome) = bramble_reaper::args::Parsed::from_args(args);
    match outcome.and_then(|()| parsed.complete()) {
        Ok(args) => bramble_reaper::run(&args),
        Err(e) => bramble_reaper::refuse(&e, &parsed),
    }
}
