//! Build check: refuse to build OpenH264 without its assembly.
//!
//! `openh264-sys2` compiles OpenH264's x86 assembly with `nasm` when it finds
//! it and otherwise silently falls back to plain C, which encodes about 2x
//! slower (notes/capture-encode.md). A recorder running on every agent PC
//! must not ship that by accident, so on x86/x86_64 targets this script fails
//! the build when `nasm` cannot be run, unless `DESKREC_ALLOW_NO_NASM=1`.
//!
//! `nasm` is looked up the way `openh264-sys2` (through `nasm-rs`) looks it
//! up: the `NASM` environment variable if set, else `nasm` on `PATH`.
//! `OPENH264_NO_ASM` (which makes `openh264-sys2` skip the assembly) counts
//! as missing `nasm` too.

use std::env;
use std::process::Command;

/// Set to `1` to build without `nasm` anyway (slow encoder).
const ALLOW_VAR: &str = "DESKREC_ALLOW_NO_NASM";

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed={ALLOW_VAR}");
    println!("cargo::rerun-if-env-changed=NASM");
    println!("cargo::rerun-if-env-changed=OPENH264_NO_ASM");
    // PATH is not tracked: a failed build script reruns anyway, and a
    // successful one has already been built with the assembly.

    if !target_uses_nasm() {
        return;
    }
    let nasm = env::var("NASM").unwrap_or_else(|_| "nasm".to_owned());
    let check = if env::var_os("OPENH264_NO_ASM").is_some() {
        Err("OPENH264_NO_ASM is set".to_owned())
    } else {
        check_nasm(&nasm)
    };
    if let Err(why) = check {
        report_missing_nasm(&nasm, &why);
    }
}

/// OpenH264 has hand-written assembly (built with nasm) only for x86 and
/// x86_64, on every OS (Linux, Windows GNU and MSVC, macOS).
fn target_uses_nasm() -> bool {
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    matches!(arch.as_str(), "x86" | "x86_64")
}

/// Runs `nasm -v` and returns an error text when it cannot be run.
fn check_nasm(nasm: &str) -> Result<(), String> {
    match Command::new(nasm).arg("-v").output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!("`{nasm} -v` exited with {}", out.status)),
        Err(err) => Err(format!("cannot run `{nasm}`: {err}")),
    }
}

/// Fails the build, or only warns when the override variable is set.
fn report_missing_nasm(nasm: &str, why: &str) {
    let allowed = env::var(ALLOW_VAR).is_ok_and(|v| v == "1");
    if allowed {
        println!(
            "cargo::warning=no nasm ({why}); OpenH264 is built without \
             assembly and encodes ~2x slower ({ALLOW_VAR}=1)"
        );
        return;
    }
    eprintln!(
        "error: `{nasm}` is needed to build OpenH264's x86 assembly ({why}).\n\
         Without it OpenH264 silently builds as plain C and encodes about 2x slower.\n\
         Install it (Debian/Ubuntu: `apt-get install nasm`; Windows: nasm.us, put it on PATH),\n\
         or point the NASM environment variable at it (and unset OPENH264_NO_ASM),\n\
         or set {ALLOW_VAR}=1 to build the slow encoder anyway."
    );
    std::process::exit(1);
}
