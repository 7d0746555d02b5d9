//! Lays out, in release builds, the functions the daemon runs from its start to idle side by
//! side at the start of the executable's code, in the order `src/startup.order` lists them
//! (written by `benches/daemon/startup-order.sh`).
//!
//! Why: the kernel maps a process's code in around every page it touches, in 64 kB blocks.
//! Start-up runs about 2 MB of functions that the linker would otherwise scatter over 11 MB of
//! code, so nearly all of it became resident. Laid out together they cost what they are: the
//! idle RSS with the shipped jails went from 14.5 MB to 10.0 MB (benches/README.md, "2026-12-02,
//! evening"). Nothing else changes: the same code, at other addresses.
//!
//! Only where the compiler's default linker takes the option (LLD's `--symbol-ordering-file`:
//! rustup's Rust 1.90+ links x86_64 Linux with its own LLD), which is asked by linking an empty
//! program with it first. A linker set by the build (the packages' cargo-zigbuild, whose zig
//! linker refuses the option), GNU ld or an older toolchain gets the default layout. Names in the list that the executable does not have are passed over (a stale
//! list costs memory, never a failed build). `NFTJAIL_NO_STARTUP_ORDER=1` turns it off.
//!
//! With the same linker, and a glibc of 2.36 or later on the build machine, the relocations
//! of the executable's own pointers are packed (`-z pack-relative-relocs`, DT_RELR): 8 kB
//! where there were 680 kB, all of which the loader read at every start, and about 1 MB less
//! idle RSS in all (9.1 MB). Such an executable needs glibc 2.36 or later to start (the loader names
//! the missing `GLIBC_ABI_DT_RELR`); one built on Debian 12 would otherwise also start on EL9
//! (2.34). The packages, built for glibc 2.28, have neither. `NFTJAIL_NO_RELR=1` turns it off.

use std::env;
use std::path::Path;
use std::process::Command;

const ORDER: &str = "src/startup.order";

fn main() {
    println!("cargo:rerun-if-changed={ORDER}");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=NFTJAIL_NO_STARTUP_ORDER");
    println!("cargo:rerun-if-env-changed=NFTJAIL_NO_RELR");
    if !default_release_link() {
        return;
    }
    let dir = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let order = Path::new(&dir).join(ORDER);
    let ordering = [
        format!("-Wl,--symbol-ordering-file={}", order.display()),
        "-Wl,--no-warn-symbol-ordering".to_string(),
    ];
    if order.is_file()
        && env::var_os("NFTJAIL_NO_STARTUP_ORDER").is_none()
        && linker_takes(&ordering)
    {
        for arg in ordering {
            println!("cargo:rustc-link-arg-bin=nftjail={arg}");
        }
    }
    let relr = ["-Wl,-z,pack-relative-relocs".to_string()];
    if env::var_os("NFTJAIL_NO_RELR").is_none()
        && glibc_minor().is_some_and(|minor| minor >= 36)
        && linker_takes(&relr)
    {
        println!("cargo:rustc-link-arg-bin=nftjail={}", relr[0]);
    }
}

/// Whether this is a release build for x86_64 Linux (glibc) with the toolchain's default
/// linker: none set by configuration or flags (cargo-zigbuild sets one).
fn default_release_link() -> bool {
    let var = |name: &str| env::var(name).unwrap_or_default();
    var("PROFILE") == "release"
        && var("TARGET") == "x86_64-unknown-linux-gnu"
        && env::var_os("RUSTC_LINKER").is_none()
        && !["linker", "link-self-contained"]
            .iter()
            .any(|flag| var("CARGO_ENCODED_RUSTFLAGS").contains(flag))
}

/// Whether the compiler cargo runs links an empty program with `args` (whatever linker it
/// uses by default: Rust's own LLD since 1.90 on the toolchains rustup installs, a
/// distribution's may differ). Asked rather than assumed, so that a linker without the option
/// costs memory, never a failed build.
fn linker_takes(args: &[String]) -> bool {
    let Some(out) = env::var_os("OUT_DIR") else {
        return false;
    };
    let out = Path::new(&out);
    let source = out.join("probe.rs");
    if std::fs::write(&source, "fn main() {}\n").is_err() {
        return false;
    }
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let mut probe = Command::new(rustc);
    probe
        .arg(&source)
        .arg("-o")
        .arg(out.join("probe"))
        .args(["--edition", "2021"]);
    for arg in args {
        probe.arg("-C").arg(format!("link-arg={arg}"));
    }
    probe
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The minor version of the build machine's glibc (`getconf GNU_LIBC_VERSION`: `glibc 2.36`
/// gives 36); `None` without glibc.
fn glibc_minor() -> Option<u32> {
    let output = Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let version = text.trim().strip_prefix("glibc ")?;
    let mut parts = version.split('.');
    (parts.next()? == "2").then_some(())?;
    parts.next()?.parse().ok()
}
