// Links libmmsb: the directory comes from MMSB_LIB_DIR (make sets it to the
// build's lib/), else the system's library path.
use std::env;

fn main() {
    println!("cargo:rerun-if-env-changed=MMSB_LIB_DIR");
    if let Ok(dir) = env::var("MMSB_LIB_DIR") {
        println!("cargo:rustc-link-search=native={}", dir);
    }
    println!("cargo:rustc-link-lib=dylib=mmsb");
}
