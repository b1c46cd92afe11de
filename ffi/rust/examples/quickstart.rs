//! A first MMSB program in Rust: pages, a write, a derived page, a
//! transaction, a zero-copy view, the log, and a reopen that reaches the
//! same state root. `cargo run --example quickstart [DIR]`; `cargo test`
//! runs it too (tests/examples.rs).
use std::path::Path;

use mmsb::{Durability, Engine, LogReader, Options};

/// Runs the program on a store in `dir` (created); returns the state root.
pub fn run(dir: &Path) -> mmsb::Result<String> {
    let options = Options::new().small().durability(Durability::None).flags(mmsb::OPEN_CREATE);
    let root = {
        let mut e = Engine::open(dir, &options)?;
        let a = e.page_create(4096)?;
        let b = e.page_create(4096)?;
        let total = e.page_create(4096)?;
        e.derive(total, mmsb::OP_SUM_U32, &[a, b], &[])?; // total = a + b, lane by lane

        let change = e.write(a, 0, &7u32.to_le_bytes())?;
        println!("wrote {} bytes, page {} is at epoch {}", change.bytes_changed, a, change.epoch);
        let mut t = e.transaction()?; // both writes commit as one
        t.write(a, 4, &1u32.to_le_bytes())?;
        t.write(b, 0, &35u32.to_le_bytes())?;
        println!("the transaction recomputed {} derived page(s)", t.commit()?.recomputes);

        let view = e.view(total)?; // no copy: the engine is borrowed while it lives
        let first = u32::from_le_bytes(view[0..4].try_into().unwrap());
        println!("total[0] = {} at epoch {}", first, view.epoch());
        assert_eq!(first, 42);
        let root = e.state_root()?;
        e.close()?;
        root
    };
    let commits = LogReader::open(dir)?.filter(|r| matches!(r, Ok(r) if r.kind == 4)).count();
    println!("the log holds {} commits", commits);
    let mut again = Engine::open(dir, &options)?; // the log rebuilds the same state
    assert_eq!(again.state_root()?, root);
    println!("reopened: same state root {}", root);
    Ok(root)
}

#[allow(dead_code)] // tests/examples.rs includes this file and calls run()
fn main() {
    let dir = std::env::args().nth(1).map(std::path::PathBuf::from).unwrap_or_else(|| {
        std::env::temp_dir().join(format!("mmsb-rust-example-{}", std::process::id()))
    });
    if let Err(e) = run(&dir) {
        eprintln!("quickstart: {}", e);
        std::process::exit(1);
    }
}
