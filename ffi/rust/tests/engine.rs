// The safe wrapper against the real library: pages, deltas, batches,
// transactions, derived pages, errors, and a reopen reaching the same root.
use std::os::unix::process::CommandExt;
use std::sync::atomic::{AtomicUsize, Ordering};

use mmsb::{Attach, Delta, Durability, Engine, ErrorKind, Options};

static NEXT: AtomicUsize = AtomicUsize::new(0);

struct Dir(std::path::PathBuf);

impl Dir {
    fn new() -> Dir {
        let p = std::env::temp_dir().join(format!("mmsb-rust-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst)));
        let _ = std::fs::remove_dir_all(&p);
        Dir(p)
    }
    fn store(&self) -> String {
        self.0.join("s").to_str().unwrap().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn options() -> Options {
    Options::new().small().gpu_off().durability(Durability::None)
}

#[test]
fn versions() {
    assert_eq!(mmsb::abi_version(), 1);
    assert!(mmsb::version().starts_with("0."));
    assert!(mmsb::strerror(-32006).contains("corrupt"));
}

#[test]
fn device_placement_on_the_emulated_device() {
    let dir = Dir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    let o = Options::new().small().gpu_emulate().gpu_threshold_bytes(8192).durability(Durability::None);
    let mut e = Engine::open(&dir.store(), &o).unwrap();
    let big = e.page_create(1 << 20).unwrap();
    let small = e.page_create(100).unwrap();
    let forced = e.page_create_placed(64, mmsb::PAGE_DEVICE).unwrap();
    assert_eq!(e.page_info(big).unwrap().location, 2);
    assert_eq!(e.page_info(small).unwrap().location, 1);
    assert_eq!(e.page_info(forced).unwrap().location, 2);
    e.write(big, 5000, &[7u8; 300]).unwrap();
    let v = e.device_view(big).unwrap();
    assert_eq!((v.size, v.epoch, v.device), (1 << 20, 1, 2));
    let copy = unsafe { std::slice::from_raw_parts(v.data as *const u8, 1 << 20) };
    assert_eq!(&copy[5000..5300], &[7u8; 300][..]);
    assert!(e.device_view(small).is_err());
    let info = e.info().unwrap();
    assert_eq!((info.gpu_pages, info.gpu_threshold_bytes), (2, 8192));
    assert!(e.page_create_placed(64, mmsb::PAGE_HOST | mmsb::PAGE_DEVICE).is_err());
    e.close().unwrap();
}

#[test]
fn pages_writes_reads_and_reopen() {
    let dir = Dir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    let root;
    {
        let mut e = Engine::open(&dir.store(), &options()).unwrap();
        let p = e.page_create(4096).unwrap();
        let c = e.write(p, 8, b"hello").unwrap();
        assert_eq!((c.epoch, c.bytes_changed), (1, 5));
        assert_eq!(e.write(p, 8, b"hello").unwrap().bytes_changed, 0);
        let mut buf = [0u8; 5];
        assert_eq!(e.read(p, 8, &mut buf).unwrap(), 1);
        assert_eq!(&buf, b"hello");
        assert_eq!(e.page_info(p).unwrap().size, 4096);
        assert_eq!(e.page_digest(p).unwrap().len(), 32);
        root = e.state_root().unwrap();
        e.close().unwrap();
    }
    let mut again = Engine::open(&dir.store(), &options()).unwrap();
    assert_eq!(again.state_root().unwrap(), root);
    assert!(again.info().unwrap().recovered_commits > 0);
}

#[test]
fn paths_of_every_kind() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::path::{Path, PathBuf};
    let dir = Dir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    let store: PathBuf = dir.0.join("s");
    let opts = options().flags(mmsb::OPEN_CREATE);
    let page;
    {
        let mut e = Engine::open(&store, &opts).unwrap(); // &PathBuf
        page = e.page_create(64).unwrap();
        e.write(page, 0, b"path").unwrap();
    }
    let opens: [&dyn Fn() -> mmsb::Result<Engine>; 3] = [
        &|| Engine::open(store.as_path(), &opts), // &Path
        &|| Engine::open(dir.store(), &opts),     // String
        &|| Engine::open(&dir.store(), &opts),    // &String
    ];
    for open in opens {
        let e = open().unwrap(); // each closed before the next opens
        let mut buf = [0u8; 4];
        e.read(page, 0, &mut buf).unwrap();
        assert_eq!(&buf, b"path");
    }
    // A file name that is not UTF-8 is a path all the same.
    let odd = dir.0.join(OsStr::from_bytes(b"store-\xff"));
    Engine::open(&odd, &opts).unwrap().close().unwrap();
    assert!(odd.is_dir());
    for bad in [Path::new(""), Path::new(OsStr::from_bytes(b"a\0b"))] {
        assert_eq!(Engine::open(bad, &opts).err().unwrap().kind, ErrorKind::InvalidArgument);
        assert_eq!(Attach::open(bad).err().unwrap().kind, ErrorKind::InvalidArgument);
        assert_eq!(mmsb::LogReader::open(bad).err().unwrap().kind, ErrorKind::InvalidArgument);
    }
}

#[test]
fn views_borrow_the_engine_and_copy_nothing() {
    let dir = Dir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    let mut e = Engine::open(dir.store(), &options()).unwrap();
    let p = e.page_create(4096).unwrap();
    e.write(p, 10, b"view").unwrap();
    {
        let v = e.view(p).unwrap();
        assert_eq!(v.len(), 4096);
        assert_eq!(&v[10..14], b"view");
        assert_eq!(v.epoch(), 1);
        let mut copy = [0u8; 4];
        e.read(p, 10, &mut copy).unwrap(); // reading calls work beside a view
        assert_eq!(&copy, &v[10..14]);
        // e.write(..) here would not compile: the view borrows the engine.
    }
    e.write(p, 10, b"next").unwrap();
    assert_eq!(&e.view(p).unwrap()[10..14], b"next");
    assert_eq!(e.view(p + 1).err().unwrap().kind, ErrorKind::NotFound);
}

#[test]
fn the_log_reader_yields_every_record() {
    let dir = Dir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    {
        let mut e = Engine::open(dir.store(), &options().flags(mmsb::OPEN_CREATE | mmsb::OPEN_KEEP_LOG)).unwrap();
        let p = e.page_create(64).unwrap();
        for i in 0..10u8 {
            e.write(p, 0, &[i + 1; 8]).unwrap();
        }
        e.close().unwrap();
    }
    let records: Vec<mmsb::Record> = mmsb::LogReader::open(&dir.0.join("s")).unwrap().map(|r| r.unwrap()).collect();
    let deltas: Vec<&mmsb::Record> = records.iter().filter(|r| r.kind == 3).collect();
    assert_eq!(deltas.len(), 10);
    assert!(deltas.iter().all(|r| r.committed && r.page_id == 1 && !r.payload.is_empty()));
    assert_eq!(deltas.last().unwrap().epoch, 10);
    assert!(records.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(records.iter().filter(|r| r.kind == 4).count() >= 11); // a commit per write, the create, the close
    let missing = dir.0.join("none");
    assert_eq!(mmsb::LogReader::open(&missing).err().unwrap().kind, ErrorKind::NotFound);
}

#[test]
fn events_reach_a_closure_until_unsubscribed() {
    use std::sync::{Arc, Mutex};
    let dir = Dir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    let mut e = Engine::open(dir.store(), &options()).unwrap();
    let p = e.page_create(64).unwrap();
    let seen: Arc<Mutex<Vec<mmsb::Event>>> = Arc::default();
    let sink = Arc::clone(&seen);
    let mask = mmsb::EVENT_PAGE_CHANGED | mmsb::EVENT_COMMIT;
    let sub = e.subscribe(mask, move |ev| sink.lock().unwrap().push(*ev)).unwrap();
    let c = e.write(p, 0, b"event").unwrap();
    {
        let events = seen.lock().unwrap();
        assert_eq!(events.len(), 2);
        let first = events[0];
        assert_eq!((first.kind, first.page_id, first.epoch, first.bytes_changed), (mmsb::EVENT_PAGE_CHANGED, p, 1, 5));
        assert_eq!((events[1].kind, events[1].commit_seq), (mmsb::EVENT_COMMIT, c.commit_seq));
    }
    e.unsubscribe(sub).unwrap();
    e.write(p, 0, b"quiet").unwrap();
    assert_eq!(seen.lock().unwrap().len(), 2);
    assert_eq!(e.unsubscribe(sub).err().unwrap().kind, ErrorKind::NotFound);
}

#[test]
fn a_panic_in_an_event_closure_comes_back_after_the_commit() {
    let dir = Dir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    let mut e = Engine::open(dir.store(), &options()).unwrap();
    let p = e.page_create(64).unwrap();
    e.subscribe(mmsb::EVENT_COMMIT, |_| panic!("listener failed")).unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| e.write(p, 0, b"kept")));
    let payload = caught.err().expect("the write raises the closure's panic");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"listener failed"));
    let mut buf = [0u8; 4];
    e.read(p, 0, &mut buf).unwrap();
    assert_eq!(&buf, b"kept"); // the commit happened
}

#[test]
fn a_registration_whose_commit_raises_a_closures_panic_keeps_the_new_operation() {
    let dir = Dir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    let mut e = Engine::open(dir.store(), &options()).unwrap();
    let (a, child) = (e.page_create(8).unwrap(), e.page_create(8).unwrap());
    let op = mmsb::OP_USER_FIRST + 2;
    e.op_register(op, 1, |input, out| {
        out.copy_from_slice(input.parent(0));
        Ok(())
    })
    .unwrap();
    e.derive(child, op, &[a], &[]).unwrap();
    e.subscribe(mmsb::EVENT_COMMIT, |_| panic!("listener failed")).unwrap();
    let held = std::sync::Arc::new(());
    let in_closure = held.clone();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        e.op_register(op, 2, move |input, out| {
            let _ = &in_closure; // owned by the closure: dropped with it
            for (o, i) in out.iter_mut().zip(input.parent(0)) {
                *o = i ^ 0xff;
            }
            Ok(())
        })
    }));
    assert!(caught.is_err(), "the registration raises the closure's panic after its commit");
    let mut buf = [0u8; 1];
    e.read(child, 0, &mut buf).unwrap();
    assert_eq!(buf[0], 0xff); // version 2 computed the page
    assert_eq!(std::sync::Arc::strong_count(&held), 2);
    drop(e);
    assert_eq!(std::sync::Arc::strong_count(&held), 1); // the engine owned the closure and freed it
}

#[test]
fn user_operations_in_rust() {
    let dir = Dir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    let mut e = Engine::open(dir.store(), &options()).unwrap();
    let (a, b, child) = (e.page_create(8).unwrap(), e.page_create(8).unwrap(), e.page_create(8).unwrap());
    let max = mmsb::OP_USER_FIRST + 1;
    e.op_register(max, 1, |input, out| {
        if input.parent(0)[0] == 0xEE {
            return Err("0xEE is refused".to_string());
        }
        if input.parent(0)[0] == 0xDD {
            panic!("0xDD makes it panic");
        }
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = input.parents().map(|p| p[i]).max().unwrap();
        }
        Ok(())
    })
    .unwrap();
    e.derive(child, max, &[a, b], &[]).unwrap();
    e.write(a, 0, &[1, 9, 1]).unwrap();
    e.write(b, 0, &[5, 2, 7]).unwrap();
    let mut buf = [0u8; 3];
    e.read(child, 0, &mut buf).unwrap();
    assert_eq!(buf, [5, 9, 7]);
    let root = e.state_root().unwrap();
    let refused = e.write(a, 0, &[0xEE]).unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Operation);
    assert!(refused.detail.contains("0xEE is refused"), "{}", refused.detail);
    let panicked = e.write(a, 0, &[0xDD]).unwrap_err();
    assert_eq!(panicked.kind, ErrorKind::Operation);
    assert!(panicked.detail.contains("panicked: 0xDD makes it panic"), "{}", panicked.detail);
    assert_eq!(e.state_root().unwrap(), root); // both rolled back
    // A new version recomputes the operation's pages before it returns.
    e.op_register(max, 2, |input, out| {
        out.copy_from_slice(input.parent(1));
        Ok(())
    })
    .unwrap();
    e.read(child, 0, &mut buf).unwrap();
    assert_eq!(buf, [5, 2, 7]);
    let mut t = e.transaction().unwrap();
    t.write(b, 0, &[3]).unwrap();
    assert_eq!(t.commit().unwrap().recomputes, 1);
    e.read(child, 0, &mut buf).unwrap();
    assert_eq!(buf, [3, 2, 7]);
}

#[test]
fn create_many_makes_consecutive_pages_in_one_commit() {
    let dir = Dir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    let mut e = Engine::open(&dir.store(), &options()).unwrap();
    let commits = e.info().unwrap().commits;
    let ids = e.page_create_many(4096, 40).unwrap();
    assert_eq!(ids, 1..41);
    assert_eq!(e.info().unwrap().commits, commits + 1);
    assert_eq!(e.page_create_many(4096, 0).unwrap_err().kind, ErrorKind::InvalidArgument);
    assert_eq!(e.info().unwrap().pages_live, 40);
}

#[test]
fn errors_map_to_kinds() {
    let dir = Dir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    let mut e = Engine::open(&dir.store(), &options()).unwrap();
    let p = e.page_create(64).unwrap();
    let err = e.write(p, 60, b"too long").unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidArgument);
    assert!(!err.detail.is_empty());
    assert_eq!(e.write(999, 0, b"x").unwrap_err().kind, ErrorKind::NotFound);
    assert_eq!(e.page_create(0).unwrap_err().kind, ErrorKind::InvalidArgument);
    assert_eq!(Engine::open(&dir.store(), &options()).err().unwrap().kind, ErrorKind::Busy);
    let short_mask = Delta { page_id: p, offset: 0, len: 64, mask: Some(&[0xff]), payload: &[1; 64], sparse: false,
                             expected_epoch: None };
    assert_eq!(e.apply(&short_mask).unwrap_err().kind, ErrorKind::InvalidArgument);
    let stale = Delta { expected_epoch: Some(7), ..Delta::dense(p, 0, b"z") };
    assert_eq!(e.apply(&stale).unwrap_err().kind, ErrorKind::Conflict);
    assert_eq!(e.page_info(p).unwrap().epoch, 0);
}

#[test]
fn deltas_batches_transactions_and_derived_pages() {
    let dir = Dir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    let mut e = Engine::open(&dir.store(), &options()).unwrap();
    let a = e.page_create(16).unwrap();
    let b = e.page_create(16).unwrap();
    let x = e.page_create(16).unwrap();
    e.derive(x, mmsb::OP_XOR, &[a, b], &[]).unwrap();
    let sparse = Delta { page_id: a, offset: 0, len: 8, mask: Some(&[0b1000_0001]), payload: b"AZ", sparse: true,
                         expected_epoch: None };
    e.apply(&sparse).unwrap();
    let mut buf = [0u8; 8];
    e.read(a, 0, &mut buf).unwrap();
    assert_eq!(&buf, b"A\0\0\0\0\0\0Z");
    let r = e.apply_batch(&[Delta::dense(a, 8, b"1"), Delta::dense(b, 8, b"2")]).unwrap();
    assert_eq!((r.pages_changed, r.recomputes), (2, 1));
    let root = e.state_root().unwrap();
    {
        let mut t = e.transaction().unwrap();
        t.write(a, 0, b"dropped").unwrap();
    } // dropped uncommitted: aborted
    assert_eq!(e.state_root().unwrap(), root);
    let mut t = e.transaction().unwrap();
    t.write(a, 12, b"\x0f").unwrap();
    t.apply(&Delta::dense(b, 12, b"\xf0")).unwrap();
    let r = t.commit().unwrap();
    assert!(r.commit_seq > 0);
    let mut one = [0u8; 1];
    e.read(x, 12, &mut one).unwrap();
    assert_eq!(one[0], 0xff);
    let y = e.page_create(16).unwrap();
    e.derive(y, mmsb::OP_COPY, &[x], &[]).unwrap();
    assert_eq!(e.edge_add(y, x).unwrap_err().kind, ErrorKind::Cycle); // x would read y, which reads x
    let root = e.state_root().unwrap();
    assert_eq!(e.page_free(a).unwrap_err().kind, ErrorKind::Dependents); // x reads a
    assert_eq!(e.state_root().unwrap(), root);
}

#[test]
fn attach_reads_a_running_engine() {
    let dir = Dir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    assert_eq!(Attach::open(&dir.store()).err().unwrap().kind, ErrorKind::NotFound);
    let mut e = Engine::open(&dir.store(), &options()).unwrap();
    let p = e.page_create(64).unwrap();
    e.write(p, 0, b"seen").unwrap();
    let mut a = Attach::open(&dir.store()).unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(a.read(p, 0, &mut buf).unwrap(), 1);
    assert_eq!(&buf, b"seen");
    assert_eq!(a.page_info(p).unwrap().size, 64);
    e.close().unwrap();
    assert_eq!(a.read(p, 0, &mut buf).unwrap_err().kind, ErrorKind::NotFound); // closed
}

const PR_SET_PDEATHSIG: i32 = 1;
const SIGKILL: u64 = 9;
extern "C" {
    fn prctl(option: i32, ...) -> i32;
}

/// A nats-server on 127.0.0.1 (a free port, a temporary directory), killed
/// by its PID when dropped; None (after saying so) when it is not installed.
struct Nats {
    child: std::process::Child,
    url: String,
    _dir: Dir,
}

impl Nats {
    fn start() -> Option<Nats> {
        let server = ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"]
            .iter()
            .find(|p| std::path::Path::new(p).exists())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let dir = Dir::new();
        let mut cmd = std::process::Command::new(server);
        cmd.args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd", dir.0.to_str()?])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        // The server dies with the test's thread even if the test crashes
        // (PR_SET_PDEATHSIG, SIGKILL): a panic or an abort leaves none behind.
        unsafe {
            cmd.pre_exec(|| {
                if prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().ok()?;
        for _ in 0..500 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Some(Nats { child, url: format!("nats://127.0.0.1:{}", port), _dir: dir })
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn replicated_commits_a_replica_and_promotion() {
    let nats = match Nats::start() {
        Some(n) => n,
        None => {
            assert!(std::env::var("MMSB_REQUIRE_NATS").as_deref() != Ok("1"), "nats-server is not installed");
            eprintln!("*** SKIPPED: nats-server is not installed (make deps installs it) ***");
            return;
        }
    };
    let d = Dir::new();
    std::fs::create_dir_all(&d.0).unwrap();
    let primary = d.0.join("p").to_str().unwrap().to_string();
    let replica = d.0.join("r").to_str().unwrap().to_string();
    let o = options().durability(Durability::Replicated).replication(&nats.url, "rs", 1).unwrap();
    let mut e = Engine::open(&primary, &o).unwrap();
    let p = e.page_create(4096).unwrap();
    let mut seq = 0;
    for i in 0..20u8 {
        seq = e.write(p, i as u64, &[i + 1]).unwrap().commit_seq;
    }
    e.wait_replicated(seq).unwrap();
    assert!(e.info().unwrap().replicated_seq >= seq);
    let root = e.state_root().unwrap();
    e.close().unwrap();
    {
        let mut r = mmsb::Replica::open(&replica, &nats.url, "rs").unwrap();
        for _ in 0..50 {
            r.poll(100).unwrap();
            if r.info().unwrap().lag_records == 0 {
                break;
            }
        }
        assert_eq!(r.info().unwrap().lag_records, 0);
        let mut pages = r.engine().unwrap(); // the replica's pages, read-only
        assert_eq!(pages.state_root().unwrap(), root);
        let mut b = [0u8; 3];
        pages.read(p, 0, &mut b).unwrap();
        assert_eq!(b, [1, 2, 3]);
        assert_eq!(pages.view(p).unwrap()[..3], [1, 2, 3]);
        assert_eq!(pages.page_digest(p).unwrap().len(), 32);
        assert!(pages.info().unwrap().pages_live >= 1);
        // pages.write(..), .subscribe(..) and .op_register(..) do not compile: a
        // replica's engine offers only reading calls.
    }
    {
        // Limits the primary's pages do not fit in: the replica stops, and says why.
        let mut limits = options();
        limits.0.page_bytes_max = 1024; // the primary's 4 KiB page does not fit
        let small = d.0.join("small").to_str().unwrap().to_string();
        let mut r = mmsb::Replica::open_with(&small, &nats.url, "rs", &limits).unwrap();
        let mut failed = false;
        for _ in 0..50 {
            if r.poll(100).is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed);
    }
    assert_eq!(Engine::open(&replica, &options()).err().unwrap().kind, ErrorKind::ReadOnly);
    mmsb::promote(&replica, Some(&nats.url), false).unwrap();
    let mut b = Engine::open(&replica, &options()).unwrap();
    assert_eq!(b.state_root().unwrap(), root);
    b.close().unwrap();
}

#[test]
fn export_and_import_make_a_store_with_the_same_state() {
    let dir = Dir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    let mut e = Engine::open(&dir.store(), &options()).unwrap();
    let a = e.page_create(16).unwrap();
    let b = e.page_create(16).unwrap();
    let x = e.page_create(16).unwrap();
    e.write(a, 0, b"left").unwrap();
    e.derive(x, mmsb::OP_XOR, &[a, b], &[]).unwrap();
    let path = dir.0.join("stream");
    let out = e.export(&std::fs::File::create(&path).unwrap()).unwrap();
    assert_eq!((out.pages, out.derived, out.page_id_next), (3, 1, 4));
    assert_eq!(out.state_root, e.state_root().unwrap());
    let copy = dir.0.join("copy");
    let got = mmsb::import(&copy, &std::fs::File::open(&path).unwrap(), &options()).unwrap();
    assert_eq!(got, out);
    let mut d = Engine::open(&copy, &options()).unwrap();
    assert_eq!(d.state_root().unwrap(), out.state_root);
    d.write(b, 0, b"right").unwrap();
    e.write(b, 0, b"right").unwrap();
    assert_eq!(d.state_root().unwrap(), e.state_root().unwrap());
    let again = mmsb::import(&copy, &std::fs::File::open(&path).unwrap(), &options()).unwrap_err();
    assert_eq!(again.kind, ErrorKind::InvalidArgument); // never over a store
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let other = dir.0.join("other");
    let err = mmsb::import(&other, &std::fs::File::open(&path).unwrap(), &options()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Corrupt);
    assert!(!other.exists());
}
