// The crate's examples run as tests, so they cannot rot.
#[path = "../examples/quickstart.rs"]
mod quickstart;

#[test]
fn quickstart_runs_and_reopens_to_the_same_root() {
    let dir = std::env::temp_dir().join(format!("mmsb-rust-quickstart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let root = quickstart::run(&dir).unwrap();
    assert_eq!(root.len(), 32);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_crate_version_is_the_librarys() {
    assert_eq!(env!("CARGO_PKG_VERSION"), mmsb::version());
}
