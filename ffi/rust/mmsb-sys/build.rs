// Links libmmsb, found in the first of these places that has it:
//   1. MMSB_LIB_DIR, when set (make sets it to the build's lib/);
//   2. the pkg-config program's answer for `mmsb` (an installed MMSB;
//      PKG_CONFIG_PATH and PKG_CONFIG_SYSROOT_DIR apply as usual);
//   3. the repository's own build (../../../build/lib from this crate,
//      ffi/rust/mmsb-sys, made by `make`).
// When none has it the build stops and says what it tried.
use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const LIBRARY_FILE: &str = "libmmsb.so";

/// The -L directories pkg-config gives for mmsb, or why it gave none.
fn pkg_config_dirs() -> Result<Vec<PathBuf>, String> {
    let program = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_string());
    let out = Command::new(&program)
        .args(["--libs-only-L", "--libs-only-l", "mmsb"])
        .output()
        .map_err(|e| format!("`{} mmsb` could not run: {}", program, e))?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr).split_whitespace().collect::<Vec<_>>().join(" ");
        return Err(format!("`{} mmsb` found no mmsb.pc ({})", program, why));
    }
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let dirs: Vec<PathBuf> = text.split_whitespace().filter_map(|f| f.strip_prefix("-L")).map(PathBuf::from).collect();
    match dirs.iter().find(|d| d.join(LIBRARY_FILE).exists()) {
        Some(_) => Ok(dirs),
        None => Err(format!("`{} mmsb` gave {:?}, which holds no {}", program, text.trim(), LIBRARY_FILE)),
    }
}

fn main() {
    for var in ["MMSB_LIB_DIR", "PKG_CONFIG", "PKG_CONFIG_PATH", "PKG_CONFIG_LIBDIR", "PKG_CONFIG_SYSROOT_DIR"] {
        println!("cargo:rerun-if-env-changed={}", var);
    }
    let mut tried = Vec::new();
    let mut found: Option<Vec<PathBuf>> = None;
    if let Ok(dir) = env::var("MMSB_LIB_DIR") {
        if Path::new(&dir).join(LIBRARY_FILE).exists() {
            found = Some(vec![PathBuf::from(dir)]);
        } else {
            tried.push(format!("MMSB_LIB_DIR={} holds no {}", dir, LIBRARY_FILE));
        }
    }
    if found.is_none() {
        match pkg_config_dirs() {
            Ok(dirs) => found = Some(dirs),
            Err(why) => tried.push(why),
        }
    }
    if found.is_none() {
        let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
        let in_tree = manifest.join("../../../build/lib");
        if in_tree.join(LIBRARY_FILE).exists() {
            found = Some(vec![in_tree]);
        } else {
            tried.push(format!("the repository's build {} holds no {} (run make)", in_tree.display(), LIBRARY_FILE));
        }
    }
    match found {
        Some(dirs) => {
            for dir in dirs {
                println!("cargo:rustc-link-search=native={}", dir.display());
            }
            println!("cargo:rustc-link-lib=dylib=mmsb");
        }
        None => panic!("mmsb: cannot find libmmsb; tried: {}", tried.join("; ")),
    }
}
