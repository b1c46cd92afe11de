//! MMSB for Rust: a safe wrapper over libmmsb's C ABI (`sys` has the raw
//! declarations). No dependencies outside the standard library. README.md
//! (the crate's) says what is covered and how the library is found.
//!
//! ```no_run
//! let mut e = mmsb::Engine::open("store", &mmsb::Options::new().durability(mmsb::Durability::None)).unwrap();
//! let page = e.page_create(4096).unwrap();
//! e.write(page, 0, b"hello").unwrap();
//! let mut buf = [0u8; 5];
//! e.read(page, 0, &mut buf).unwrap();
//! println!("{}", e.state_root().unwrap());
//! ```

#![deny(missing_docs)]

use std::ffi::{CStr, CString};
use std::fmt;
use std::marker::PhantomData;
use std::os::raw::{c_int, c_void};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::ptr;

/// The raw declarations of mmsb.h, one for one: the `mmsb-sys` crate.
pub use mmsb_sys as sys;

/// What went wrong, by the library's error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// An argument is out of its range or inconsistent (MMSB_EINVAL).
    InvalidArgument,
    /// No such page, store or record (MMSB_ENOTFOUND).
    NotFound,
    /// A delta's expected epoch no longer holds (MMSB_ECONFLICT).
    Conflict,
    /// A limit was reached: arena, pages, commit or transaction bytes (MMSB_ENOSPC).
    NoSpace,
    /// The disk failed a read, write or sync (MMSB_EIO).
    Io,
    /// Bytes on disk failed their checks (MMSB_ECORRUPT).
    Corrupt,
    /// A store or caller of another format or ABI version (MMSB_EVERSION).
    Version,
    /// Another thread or process holds it (MMSB_EBUSY).
    Busy,
    /// Not possible here, such as a view of a device page (MMSB_ENOTSUP).
    NotSupported,
    /// Memory ran out (MMSB_ENOMEM).
    OutOfMemory,
    /// An edge would close a cycle in the dependency graph (MMSB_ECYCLE).
    Cycle,
    /// A derivation operation failed (MMSB_EOP).
    Operation,
    /// A writing call on a read-only engine (MMSB_EREADONLY).
    ReadOnly,
    /// Derived pages still read the page (MMSB_EDEPENDENTS).
    Dependents,
    /// A writing call from an event callback (MMSB_ECALLBACK).
    Callback,
    /// The replication stream did not store it: unreachable, no quorum (MMSB_EREPLICA).
    Replication,
    /// Another writer took the replication stream over (MMSB_EFENCED).
    Fenced,
    /// An errno value or a code this binding does not know.
    Other,
}

/// A failed call: the kind, the library's code and its detail message.
#[derive(Clone, Debug)]
pub struct Error {
    /// The code's kind.
    pub kind: ErrorKind,
    /// The negative MMSB_E* code (or an errno value).
    pub code: i32,
    /// The library's detail message: which argument, what value, which limit.
    pub detail: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", strerror(self.code), self.detail)
    }
}

impl std::error::Error for Error {}

/// The result of every call of this crate.
pub type Result<T> = std::result::Result<T, Error>;

fn kind_of(code: i32) -> ErrorKind {
    match code {
        -32001 => ErrorKind::InvalidArgument,
        -32002 => ErrorKind::NotFound,
        -32003 => ErrorKind::Conflict,
        -32004 => ErrorKind::NoSpace,
        -32005 => ErrorKind::Io,
        -32006 => ErrorKind::Corrupt,
        -32007 => ErrorKind::Version,
        -32008 => ErrorKind::Busy,
        -32009 => ErrorKind::NotSupported,
        -32010 => ErrorKind::OutOfMemory,
        -32011 => ErrorKind::Cycle,
        -32012 => ErrorKind::Operation,
        -32013 => ErrorKind::ReadOnly,
        -32014 => ErrorKind::Dependents,
        -32015 => ErrorKind::Callback,
        -32016 => ErrorKind::Replication,
        -32017 => ErrorKind::Fenced,
        _ => ErrorKind::Other,
    }
}

fn text(p: *const std::os::raw::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn check(rc: c_int) -> Result<()> {
    if rc == 0 {
        return Ok(());
    }
    Err(Error { kind: kind_of(rc), code: rc, detail: text(unsafe { sys::mmsb_last_error() }) })
}

/// An error raised by the binding itself, before the library is called.
fn invalid(detail: &str) -> Error {
    Error { kind: ErrorKind::InvalidArgument, code: -32001, detail: detail.to_string() }
}

/// The text of any code (also errno values).
pub fn strerror(code: i32) -> String {
    text(unsafe { sys::mmsb_strerror(code) })
}

/// The library's version string.
pub fn version() -> String {
    text(unsafe { sys::mmsb_version(ptr::null_mut(), ptr::null_mut(), ptr::null_mut()) })
}

/// The library's ABI version (this crate speaks sys::MMSB_ABI_VERSION).
pub fn abi_version() -> i32 {
    unsafe { sys::mmsb_abi_version() }
}

/// When a commit is durable (README, "Durability").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// A commit returns at once; `sync` (or a later sync) makes it durable.
    None = 1,
    /// A commit returns at once and is made durable with the next group
    /// (`wait_durable` waits for it).
    Group = 2,
    /// A commit returns once it is on disk.
    Sync = 3,
    /// As Group on the local disk, and acknowledged by `wait_replicated`
    /// once the replication stream holds the commit on a quorum.
    Replicated = 4,
}

/// Page flag: always on the host.
pub const PAGE_HOST: u32 = 0x1;
/// Page flag: on the device whatever its size (an engine with a device only).
pub const PAGE_DEVICE: u32 = 0x2;
/// Open flag: create the store when the directory has none.
pub const OPEN_CREATE: u32 = 0x1;
/// Open flag: cut a damaged log at its last good commit instead of failing.
pub const OPEN_SALVAGE: u32 = 0x2;
/// Open flag: keep every log segment (checkpoints remove none).
pub const OPEN_KEEP_LOG: u32 = 0x4;
/// Open flag: read the store without writing to it.
pub const OPEN_READONLY: u32 = 0x8;
/// Derivation: the child is a copy of its one parent.
pub const OP_COPY: u32 = 1;
/// Derivation: the child is its parents' bytes one after another.
pub const OP_CONCAT: u32 = 2;
/// Derivation: the child is its parents XORed byte by byte.
pub const OP_XOR: u32 = 3;
/// Derivation: the child is the sum of its parents as u32 lanes (wrapping).
pub const OP_SUM_U32: u32 = 4;
/// Derivation: the child is the sum of its parents as u64 lanes (wrapping).
pub const OP_SUM_U64: u32 = 5;
/// Derivation: the child is the maximum of its parents, byte by byte.
pub const OP_MAX_U8: u32 = 6;
/// Derivation: the child is the maximum of its parents as u32 lanes.
pub const OP_MAX_U32: u32 = 7;
/// Derivation: the child is the maximum of its parents as u64 lanes.
pub const OP_MAX_U64: u32 = 8;

/// Open options: the library's defaults, then adjusted.
pub struct Options(pub sys::mmsb_options, ReplicationStrings);

impl Clone for Options {
    /// The copy owns its own strings and points at them.
    fn clone(&self) -> Options {
        let mut o = Options(self.0, ReplicationStrings { servers: self.1.servers.clone(), stream: self.1.stream.clone() });
        o.0.replication_servers = o.1.servers.as_ref().map_or(ptr::null(), |c| c.as_ptr());
        o.0.replication_stream = o.1.stream.as_ref().map_or(ptr::null(), |c| c.as_ptr());
        o
    }
}

/// The replication strings the options point at, owned with them.
#[derive(Default)]
pub struct ReplicationStrings {
    servers: Option<CString>,
    stream: Option<CString>,
}

impl Options {
    /// The library's default options (`mmsb_options_init`).
    pub fn new() -> Options {
        let mut o = sys::mmsb_options::default();
        let rc = unsafe {
            sys::mmsb_options_init(&mut o, std::mem::size_of::<sys::mmsb_options>() as u32, sys::MMSB_ABI_VERSION)
        };
        assert_eq!(rc, 0, "libmmsb refuses this binding's options struct (another ABI?)");
        Options(o, ReplicationStrings::default())
    }
    /// Publishes the log to the JetStream stream `stream` on `servers`
    /// ("nats://HOST:PORT[,...]"), creating it with `create` copies when it
    /// does not exist (0: it must exist). README, "Replication".
    pub fn replication(mut self, servers: &str, stream: &str, create: u32) -> Result<Options> {
        let servers = CString::new(servers).map_err(|_| invalid("servers contains a NUL byte"))?;
        let stream = CString::new(stream).map_err(|_| invalid("stream contains a NUL byte"))?;
        self.0.replication_servers = servers.as_ptr();
        self.0.replication_stream = stream.as_ptr();
        self.0.replication_create = create;
        self.1 = ReplicationStrings { servers: Some(servers), stream: Some(stream) };
        Ok(self)
    }
    /// How long a publish (and `wait_replicated`) waits for the stream.
    pub fn replication_timeout_ms(mut self, ms: u64) -> Options {
        self.0.replication_timeout_ms = ms;
        self
    }
    /// The durability of commits.
    pub fn durability(mut self, d: Durability) -> Options {
        self.0.durability = d as u32;
        self
    }
    /// The open flags (`OPEN_*`).
    pub fn flags(mut self, flags: u32) -> Options {
        self.0.flags = flags;
        self
    }
    /// Never touch the CUDA runtime.
    pub fn gpu_off(mut self) -> Options {
        self.0.gpu = 1;
        self
    }
    /// The emulated device (host memory): pages at or above the threshold
    /// take the device path, for tests on machines without a GPU.
    pub fn gpu_emulate(mut self) -> Options {
        self.0.gpu = 2;
        self
    }
    /// Pages this big or bigger are device pages (0: the device's default).
    pub fn gpu_threshold_bytes(mut self, bytes: u64) -> Options {
        self.0.gpu_threshold_bytes = bytes;
        self
    }
    /// Limits for small stores (tests, examples): 256 MiB of pages.
    pub fn small(mut self) -> Options {
        self.0.arena_bytes_max = 256 << 20;
        self.0.arena_grow_bytes = 1 << 20;
        self.0.page_bytes_max = 64 << 20;
        self.0.pages_max = 1 << 16;
        self.0.segment_bytes = 4 << 20;
        self.0.log_buffer_bytes = 1 << 20;
        self.0.group_window_bytes = 256 << 10;
        self
    }
}

impl Default for Options {
    fn default() -> Options {
        Options::new()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// What a write or apply did.
pub struct Change {
    /// The page's epoch after the call.
    pub epoch: u64,
    /// The bytes whose value changed (0: nothing changed, no commit).
    pub bytes_changed: u64,
    /// The sequence number of its commit (0 when nothing changed).
    pub commit_seq: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// What a commit did.
pub struct CommitResult {
    /// The commit's sequence number.
    pub commit_seq: u64,
    /// Changes that changed bytes (of base pages, not derived ones).
    pub pages_changed: u64,
    /// Bytes whose value changed.
    pub bytes_changed: u64,
    /// Derived pages recomputed.
    pub recomputes: u64,
    /// Derived pages not recomputed: their inputs' epoch signature was unchanged.
    pub skips: u64,
    /// Recomputed pages whose bytes came out unchanged (their children then skip).
    pub backdates: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// A page's id, size, epoch and place.
pub struct PageInfo {
    /// Its id.
    pub page_id: u64,
    /// Its size in bytes.
    pub size: u64,
    /// Its epoch: one more per commit that changed its bytes.
    pub epoch: u64,
    /// Where it lives (MMSB_LOC_*: 1 host, 2 device).
    pub location: u32,
}

/// An explicit change of one page: the bytes [offset, offset + len) whose
/// bit is set in `mask` (None: every byte) take new values from `payload`
/// (`len` bytes, or with `sparse` only the masked ones).
#[derive(Clone, Copy, Debug)]
pub struct Delta<'a> {
    /// The page changed.
    pub page_id: u64,
    /// The first byte of the range, in the page.
    pub offset: u64,
    /// The range's length in bytes.
    pub len: u64,
    /// One bit per byte of the range, least significant first; None: every byte.
    pub mask: Option<&'a [u8]>,
    /// The new bytes: `len` of them, or with `sparse` one per set mask bit.
    pub payload: &'a [u8],
    /// The payload holds only the masked bytes.
    pub sparse: bool,
    /// Fail with `ErrorKind::Conflict`, changing nothing, unless the page is at this epoch.
    pub expected_epoch: Option<u64>,
}

impl<'a> Delta<'a> {
    /// A dense delta writing every byte of `payload` at `offset`.
    pub fn dense(page_id: u64, offset: u64, payload: &'a [u8]) -> Delta<'a> {
        Delta { page_id, offset, len: payload.len() as u64, mask: None, payload, sparse: false, expected_epoch: None }
    }

    /// The C struct; `ones` holds an all-set mask when none was given. The
    /// slices' lengths are checked here, so the library never reads past them.
    fn raw(&self, ones: &'a mut Vec<u8>) -> Result<sys::mmsb_delta> {
        let mask_bytes = ((self.len + 7) / 8) as usize;
        let mask: &[u8] = match self.mask {
            Some(m) => m,
            None => {
                if self.sparse {
                    return Err(invalid("a sparse delta needs a mask"));
                }
                ones.clear();
                ones.resize(mask_bytes, 0xff);
                if self.len % 8 != 0 {
                    ones[mask_bytes - 1] = (1u8 << (self.len % 8)) - 1; /* no bits past len */
                }
                ones
            }
        };
        if mask.len() < mask_bytes {
            return Err(invalid("the mask is shorter than (len + 7) / 8 bytes"));
        }
        if !self.sparse && (self.payload.len() as u64) < self.len {
            return Err(invalid("a dense payload needs len bytes"));
        }
        let mut flags = if self.sparse { 1 } else { 0 };
        if self.expected_epoch.is_some() {
            flags |= 2;
        }
        Ok(sys::mmsb_delta {
            page_id: self.page_id,
            offset: self.offset,
            len: self.len,
            mask: mask.as_ptr(),
            payload: self.payload.as_ptr(),
            payload_len: if self.sparse { self.payload.len() as u64 } else { self.len },
            expected_epoch: self.expected_epoch.unwrap_or(0),
            flags,
            reserved0: 0,
        })
    }
}

fn result_of(r: &sys::mmsb_commit_result) -> CommitResult {
    CommitResult {
        commit_seq: r.commit_seq,
        pages_changed: r.pages_changed,
        bytes_changed: r.bytes_changed,
        recomputes: r.recomputes,
        skips: r.skips,
        backdates: r.backdates,
    }
}

fn new_result() -> sys::mmsb_commit_result {
    sys::mmsb_commit_result {
        struct_size: std::mem::size_of::<sys::mmsb_commit_result>() as u32,
        ..Default::default()
    }
}

fn hex(d: &sys::mmsb_digest) -> Result<String> {
    let mut out = [0 as std::os::raw::c_char; 33];
    check(unsafe { sys::mmsb_digest_hex(d, out.as_mut_ptr(), out.len()) })?;
    Ok(text(out.as_ptr()))
}

/// An open store; closed when dropped (or by `close`, which reports errors).
pub struct Engine {
    h: *mut sys::mmsb_engine,
    /// false for a replica's pages: the replica closes them.
    owned: bool,
    /// The closures the library calls back.
    hooks: Hooks,
}

type EventFn = dyn FnMut(&Event) + Send;
type OpFn = dyn FnMut(&OpInput<'_>, &mut [u8]) -> std::result::Result<(), String> + Send;

/// One registered closure and where it reports failures. The library holds
/// its address (the `user` pointer), so it lives in a leaked box that Hooks
/// frees once the library can no longer call it.
struct Slot<F: ?Sized> {
    failures: *mut Failures,
    f: Box<F>,
}

#[derive(Default)]
struct Failures {
    /// Why the last operation failed (its Err text, or its panic's).
    op_failure: Option<String>,
    /// The panic of an event closure, raised again when the call that made
    /// the commit returns (the commit has happened).
    event_panic: Option<Box<dyn std::any::Any + Send>>,
}

/// The closures an engine has given the library, as raw pointers from
/// Box::into_raw: only the library and the trampolines reach through them.
struct Hooks {
    failures: *mut Failures,
    subscriptions: Vec<(u64, *mut Slot<EventFn>)>,
    ops: Vec<(u32, *mut Slot<OpFn>)>,
}

impl Hooks {
    fn new() -> Hooks {
        Hooks { failures: Box::into_raw(Box::default()), subscriptions: Vec::new(), ops: Vec::new() }
    }

    fn take_failures(&mut self) -> Failures {
        std::mem::take(unsafe { &mut *self.failures })
    }
}

// Dropped after Engine::drop has closed the engine: nothing calls them now.
impl Drop for Hooks {
    fn drop(&mut self) {
        for (_, slot) in self.subscriptions.drain(..) {
            drop(unsafe { Box::from_raw(slot) });
        }
        for (_, slot) in self.ops.drain(..) {
            drop(unsafe { Box::from_raw(slot) });
        }
        drop(unsafe { Box::from_raw(self.failures) });
    }
}

/// What happened in a commit, as `Engine::subscribe` delivers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// One `EVENT_*`.
    pub kind: u32,
    /// For a COMMIT event: `EVENT_TRUNCATED` when events were dropped, else 0.
    pub flags: u32,
    /// The commit's sequence number.
    pub commit_seq: u64,
    /// The page changed (0 for a COMMIT event).
    pub page_id: u64,
    /// The page's epoch after the change.
    pub epoch: u64,
    /// Bytes whose value changed.
    pub bytes_changed: u64,
}

/// Event kind: a page's bytes changed by a write or delta.
pub const EVENT_PAGE_CHANGED: u32 = 0x1;
/// Event kind: a derived page was recomputed and changed.
pub const EVENT_DERIVED: u32 = 0x2;
/// Event kind: the commit is complete (after its page events).
pub const EVENT_COMMIT: u32 = 0x4;
/// Event flag of a COMMIT event: some of its page events were not delivered.
pub const EVENT_TRUNCATED: u32 = 0x1;
/// The first operation number a user operation may take.
pub const OP_USER_FIRST: u32 = 0x10000;

/// What a user operation receives: the child, its parents' ids, epochs and
/// bytes in the order they were given, and the derivation's params.
pub struct OpInput<'a> {
    /// The derived page being computed.
    pub child_id: u64,
    /// The version the operation was registered with.
    pub op_version: u32,
    /// The parents' ids.
    pub parent_ids: &'a [u64],
    /// The parents' epochs.
    pub parent_epochs: &'a [u64],
    /// The derivation's params.
    pub params: &'a [u8],
    parent_bytes: &'a [*const u8],
    parent_sizes: &'a [u64],
}

impl<'a> OpInput<'a> {
    /// The bytes of parent `i` (0-based, in the order given to `derive`).
    pub fn parent(&self, i: usize) -> &'a [u8] {
        let len = self.parent_sizes[i] as usize;
        if len == 0 {
            return &[];
        }
        // The library lends the parents' bytes for the call's duration.
        unsafe { std::slice::from_raw_parts(self.parent_bytes[i], len) }
    }

    /// The bytes of every parent, in order.
    pub fn parents(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        (0..self.parent_ids.len()).map(move |i| self.parent(i))
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        return (*s).to_string();
    }
    payload.downcast_ref::<String>().cloned().unwrap_or_else(|| "a panic".to_string())
}

unsafe extern "C" fn event_trampoline(user: *mut c_void, event: *const sys::mmsb_event) {
    let slot = &mut *(user as *mut Slot<EventFn>);
    let e = &*event;
    let event = Event {
        kind: e.kind,
        flags: e.flags,
        commit_seq: e.commit_seq,
        page_id: e.page_id,
        epoch: e.epoch,
        bytes_changed: e.bytes_changed,
    };
    // A panic must not unwind into C: it is kept and raised again by the call.
    if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (slot.f)(&event))) {
        let failures = &mut *slot.failures;
        if failures.event_panic.is_none() {
            failures.event_panic = Some(payload);
        }
    }
}

unsafe extern "C" fn op_trampoline(
    user: *mut c_void,
    input: *const sys::mmsb_op_input,
    out: *mut u8,
    out_len: u64,
) -> c_int {
    let slot = &mut *(user as *mut Slot<OpFn>);
    let i = &*input;
    let n = i.parent_count as usize;
    let slice = |p: *const u64| if n == 0 { &[][..] } else { std::slice::from_raw_parts(p, n) };
    let input = OpInput {
        child_id: i.child_id,
        op_version: i.op_version,
        parent_ids: slice(i.parent_ids),
        parent_epochs: slice(i.parent_epochs),
        params: if i.params_len == 0 { &[] } else { std::slice::from_raw_parts(i.params, i.params_len as usize) },
        parent_bytes: if n == 0 { &[] } else { std::slice::from_raw_parts(i.parent_bytes, n) },
        parent_sizes: slice(i.parent_sizes),
    };
    let out = if out_len == 0 { &mut [][..] } else { std::slice::from_raw_parts_mut(out, out_len as usize) };
    let failure = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (slot.f)(&input, out))) {
        Ok(Ok(())) => return 0,
        Ok(Err(text)) => text,
        Err(payload) => format!("the operation panicked: {}", panic_text(payload.as_ref())),
    };
    (*slot.failures).op_failure = Some(failure);
    1
}

// The engine may be used from any thread, one at a time (&mut self).
unsafe impl Send for Engine {}

/// A path as the C library takes it: its bytes, which must hold no NUL.
fn c_path<P: AsRef<Path>>(path: P) -> Result<CString> {
    let bytes = path.as_ref().as_os_str().as_bytes();
    if bytes.is_empty() {
        return Err(invalid("the path is empty"));
    }
    CString::new(bytes).map_err(|_| invalid("the path contains a NUL byte"))
}

impl Engine {
    /// Opens (with `OPEN_CREATE`, creates) the store in directory `dir`.
    pub fn open<P: AsRef<Path>>(dir: P, options: &Options) -> Result<Engine> {
        let path = c_path(dir)?;
        let mut h = ptr::null_mut();
        check(unsafe { sys::mmsb_open(path.as_ptr(), &options.0, &mut h) })?;
        Ok(Engine { h, owned: true, hooks: Hooks::new() })
    }

    /// The result of a call that may commit: an event closure's panic is
    /// raised again here, and an operation's failure text joins the error.
    fn finish(&mut self, rc: c_int) -> Result<()> {
        let (result, event_panic) = self.settle(rc);
        if let Some(payload) = event_panic {
            std::panic::resume_unwind(payload);
        }
        result
    }

    /// `finish` without raising an event closure's panic: the caller does,
    /// once its own bookkeeping for the call is done.
    fn settle(&mut self, rc: c_int) -> (Result<()>, Option<Box<dyn std::any::Any + Send>>) {
        let failures = self.hooks.take_failures();
        let result = match check(rc) {
            Err(mut e) if e.kind == ErrorKind::Operation => {
                if let Some(text) = failures.op_failure {
                    e.detail = format!("{}: {}", e.detail, text);
                }
                Err(e)
            }
            other => other,
        };
        (result, failures.event_panic)
    }

    fn callbacks_allowed(&self) -> Result<()> {
        if self.owned {
            return Ok(());
        }
        Err(Error {
            kind: ErrorKind::NotSupported,
            code: -32009,
            detail: "a replica's engine takes no callbacks".to_string(),
        })
    }

    /// Calls `f` after each commit for the event kinds in `mask`
    /// (`EVENT_*`), on the committing thread, in the order of the changes,
    /// then the COMMIT event. Returns the subscription's id. A panic in `f`
    /// does not undo the commit: it is raised again when the call that
    /// committed returns. At most 64 subscriptions per engine.
    pub fn subscribe<F>(&mut self, mask: u32, f: F) -> Result<u64>
    where
        F: FnMut(&Event) + Send + 'static,
    {
        self.callbacks_allowed()?;
        let slot: *mut Slot<EventFn> = Box::into_raw(Box::new(Slot { failures: self.hooks.failures, f: Box::new(f) }));
        let mut id = 0;
        let rc = unsafe { sys::mmsb_subscribe(self.h, mask, Some(event_trampoline), slot as *mut c_void, &mut id) };
        if let Err(e) = check(rc) {
            drop(unsafe { Box::from_raw(slot) }); // the library did not take it
            return Err(e);
        }
        self.hooks.subscriptions.push((id, slot));
        Ok(id)
    }

    /// Ends a subscription that `subscribe` returned; its closure is dropped.
    pub fn unsubscribe(&mut self, subscription: u64) -> Result<()> {
        check(unsafe { sys::mmsb_unsubscribe(self.h, subscription) })?;
        if let Some(at) = self.hooks.subscriptions.iter().position(|(id, _)| *id == subscription) {
            let (_, slot) = self.hooks.subscriptions.swap_remove(at);
            drop(unsafe { Box::from_raw(slot) }); // the library no longer calls it
        }
        Ok(())
    }

    /// Registers (or replaces) user operation `op` (>= `OP_USER_FIRST`) at
    /// `version`: `f` writes the child's whole content into the slice it is
    /// given, from its input alone (the engine skips it when its inputs did
    /// not change). Its `Err` text, or a panic, fails the commit, which is
    /// rolled back; the call returns `ErrorKind::Operation` with that text.
    /// A new version recomputes the operation's pages before this returns.
    pub fn op_register<F>(&mut self, op: u32, version: u32, f: F) -> Result<()>
    where
        F: FnMut(&OpInput<'_>, &mut [u8]) -> std::result::Result<(), String> + Send + 'static,
    {
        self.callbacks_allowed()?;
        let slot: *mut Slot<OpFn> = Box::into_raw(Box::new(Slot { failures: self.hooks.failures, f: Box::new(f) }));
        let rc = unsafe { sys::mmsb_op_register(self.h, op, version, Some(op_trampoline), slot as *mut c_void) };
        let (result, event_panic) = self.settle(rc);
        if rc != 0 {
            drop(unsafe { Box::from_raw(slot) }); // refused: the previous registration stays
        } else {
            // The library calls the new closure from now on; the old one may go.
            if let Some(at) = self.hooks.ops.iter().position(|(o, _)| *o == op) {
                let (_, old) = self.hooks.ops.swap_remove(at);
                drop(unsafe { Box::from_raw(old) });
            }
            self.hooks.ops.push((op, slot));
        }
        // An event closure's panic in the registration's commit comes out
        // only now, with the new closure already owned by the engine.
        if let Some(payload) = event_panic {
            std::panic::resume_unwind(payload);
        }
        result
    }

    /// Closes the engine and says whether the last commits reached the disk.
    pub fn close(mut self) -> Result<()> {
        let h = std::mem::replace(&mut self.h, ptr::null_mut());
        check(unsafe { sys::mmsb_close(h) })
    }

    /// Creates a zero page of `size` bytes in a commit of its own; its id.
    pub fn page_create(&mut self, size: u64) -> Result<u64> {
        self.page_create_placed(size, 0)
    }

    /// As page_create, placed by `flags` (`PAGE_HOST` or `PAGE_DEVICE`;
    /// 0: by size) instead of by size alone.
    pub fn page_create_placed(&mut self, size: u64, flags: u32) -> Result<u64> {
        let mut id = 0;
        self.finish(unsafe { sys::mmsb_page_create(self.h, size, flags, &mut id) })?;
        Ok(id)
    }

    /// Creates `count` zero pages of `size` bytes in one commit; their ids,
    /// consecutive. All of them or none.
    pub fn page_create_many(&mut self, size: u64, count: u64) -> Result<std::ops::Range<u64>> {
        let mut first = 0;
        self.finish(unsafe { sys::mmsb_page_create_many(self.h, size, 0, count, &mut first) })?;
        Ok(first..first + count)
    }

    /// Frees the page in a commit of its own.
    pub fn page_free(&mut self, page_id: u64) -> Result<()> {
        self.finish(unsafe { sys::mmsb_page_free(self.h, page_id) })
    }

    /// The page's id, size, epoch and place.
    pub fn page_info(&self, page_id: u64) -> Result<PageInfo> {
        let mut i = sys::mmsb_pageinfo {
            struct_size: std::mem::size_of::<sys::mmsb_pageinfo>() as u32,
            ..Default::default()
        };
        check(unsafe { sys::mmsb_page_info(self.h, page_id, &mut i) })?;
        Ok(PageInfo { page_id: i.page_id, size: i.size_bytes, epoch: i.epoch, location: i.location })
    }

    /// Fills `buf` with the page's bytes at `offset` (all of one epoch) and
    /// returns that epoch.
    pub fn read(&self, page_id: u64, offset: u64, buf: &mut [u8]) -> Result<u64> {
        let mut epoch = 0;
        check(unsafe {
            sys::mmsb_page_read(self.h, page_id, offset, buf.as_mut_ptr() as *mut c_void, buf.len() as u64, &mut epoch)
        })?;
        Ok(epoch)
    }

    /// The page's bytes without a copy, with the epoch they had when the
    /// view was taken. The view borrows the engine, so no write, free or
    /// close can happen while it lives: its bytes stay as they are.
    /// `ErrorKind::NotSupported` for a device page (read it instead).
    pub fn view(&self, page_id: u64) -> Result<PageView<'_>> {
        let (mut data, mut size, mut epoch) = (ptr::null(), 0u64, 0u64);
        check(unsafe { sys::mmsb_page_view(self.h, page_id, &mut data, &mut size, &mut epoch) })?;
        let len = usize::try_from(size).map_err(|_| invalid("the page is larger than this machine's address space"))?;
        // The pointer stays valid until the page is freed or the engine
        // closed, and both need the engine that this view borrows.
        let bytes = if len == 0 { &[][..] } else { unsafe { std::slice::from_raw_parts(data as *const u8, len) } };
        Ok(PageView { bytes, epoch })
    }

    /// A device page's copy in device memory, once it holds every commit:
    /// its address (on the device; host memory on the emulated device), size,
    /// epoch, device kind and stream. The address stays valid until the page
    /// is freed or the engine closed; later commits change the bytes in place.
    pub fn device_view(&mut self, page_id: u64) -> Result<DeviceView> {
        let mut v = sys::mmsb_device_view {
            struct_size: std::mem::size_of::<sys::mmsb_device_view>() as u32,
            device: 0,
            data: ptr::null(),
            size_bytes: 0,
            epoch: 0,
            stream: 0,
        };
        check(unsafe { sys::mmsb_page_device_view(self.h, page_id, &mut v) })?;
        Ok(DeviceView { data: v.data, size: v.size_bytes, epoch: v.epoch, device: v.device, stream: v.stream })
    }

    /// Writes `bytes` at `offset` as one commit (only the bytes that differ
    /// change).
    pub fn write(&mut self, page_id: u64, offset: u64, bytes: &[u8]) -> Result<Change> {
        let mut c = sys::mmsb_change::default();
        self.finish(unsafe {
            sys::mmsb_write(self.h, page_id, offset, bytes.as_ptr() as *const c_void, bytes.len() as u64, &mut c)
        })?;
        Ok(Change { epoch: c.epoch, bytes_changed: c.bytes_changed, commit_seq: c.commit_seq })
    }

    /// Applies one delta as one commit.
    pub fn apply(&mut self, delta: &Delta<'_>) -> Result<Change> {
        let mut ones = Vec::new();
        let d = delta.raw(&mut ones)?;
        let mut c = sys::mmsb_change::default();
        self.finish(unsafe { sys::mmsb_apply(self.h, &d, &mut c) })?;
        Ok(Change { epoch: c.epoch, bytes_changed: c.bytes_changed, commit_seq: c.commit_seq })
    }

    /// Applies the deltas as one commit, all or none.
    pub fn apply_batch(&mut self, deltas: &[Delta<'_>]) -> Result<CommitResult> {
        let mut ones: Vec<Vec<u8>> = deltas.iter().map(|_| Vec::new()).collect();
        let mut raw = Vec::with_capacity(deltas.len());
        for (d, o) in deltas.iter().zip(ones.iter_mut()) {
            raw.push(d.raw(o)?);
        }
        let mut r = new_result();
        self.finish(unsafe { sys::mmsb_apply_batch(self.h, raw.as_ptr(), raw.len() as u64, 0, &mut r) })?;
        Ok(result_of(&r))
    }

    /// A transaction over this engine; it aborts when dropped uncommitted.
    pub fn transaction(&mut self) -> Result<Transaction<'_>> {
        let mut t = ptr::null_mut();
        check(unsafe { sys::mmsb_txn_begin(self.h, &mut t) })?;
        Ok(Transaction { h: t, engine: self })
    }

    /// Makes `child` derived by operation `op` (`OP_*`) from `parents`, with
    /// `params`; the child is computed in the same commit.
    pub fn derive(&mut self, child: u64, op: u32, parents: &[u64], params: &[u8]) -> Result<CommitResult> {
        let spec = sys::mmsb_derive_spec {
            struct_size: std::mem::size_of::<sys::mmsb_derive_spec>() as u32,
            op,
            parents: parents.as_ptr(),
            parent_count: parents.len() as u32,
            flags: 0,
            params: params.as_ptr() as *const c_void,
            params_len: params.len() as u64,
        };
        if parents.len() > u32::MAX as usize {
            return Err(invalid("too many parents"));
        }
        let mut r = new_result();
        self.finish(unsafe { sys::mmsb_derive(self.h, child, &spec, &mut r) })?;
        Ok(result_of(&r))
    }

    /// Makes a derived page plain again (its bytes stay).
    pub fn underive(&mut self, child: u64) -> Result<CommitResult> {
        let mut r = new_result();
        self.finish(unsafe { sys::mmsb_underive(self.h, child, &mut r) })?;
        Ok(result_of(&r))
    }

    /// Adds `parent` to a derived page's parents and recomputes it.
    pub fn edge_add(&mut self, parent: u64, child: u64) -> Result<CommitResult> {
        let mut r = new_result();
        self.finish(unsafe { sys::mmsb_edge_add(self.h, parent, child, &mut r) })?;
        Ok(result_of(&r))
    }

    /// Removes `parent` from a derived page's parents and recomputes it.
    pub fn edge_remove(&mut self, parent: u64, child: u64) -> Result<CommitResult> {
        let mut r = new_result();
        self.finish(unsafe { sys::mmsb_edge_remove(self.h, parent, child, &mut r) })?;
        Ok(result_of(&r))
    }

    /// Makes every commit so far durable.
    pub fn sync(&self) -> Result<()> {
        check(unsafe { sys::mmsb_sync(self.h) })
    }

    /// Blocks until the commit with that sequence number is durable.
    pub fn wait_durable(&self, commit_seq: u64) -> Result<()> {
        check(unsafe { sys::mmsb_wait_durable(self.h, commit_seq) })
    }

    /// Blocks until the commit is durable here and held by the replication
    /// stream on a quorum (ErrorKind::Replication, ErrorKind::Fenced).
    pub fn wait_replicated(&self, commit_seq: u64) -> Result<()> {
        check(unsafe { sys::mmsb_wait_replicated(self.h, commit_seq) })
    }

    /// The durability of the commits that follow.
    pub fn set_durability(&mut self, d: Durability) -> Result<()> {
        check(unsafe { sys::mmsb_set_durability(self.h, d as u32) })
    }

    /// Writes a checkpoint of the state now; log segments it covers are
    /// then removed (unless opened with `OPEN_KEEP_LOG`).
    pub fn checkpoint(&mut self) -> Result<()> {
        check(unsafe { sys::mmsb_checkpoint(self.h) })
    }

    /// Writes the committed state as an export stream (tlog/EXPORT.md) to
    /// `out` (a file, a pipe) from its position on; [`import`] makes a new
    /// store of it. Holds the writer role while it runs.
    pub fn export<F: AsRawFd>(&mut self, out: &F) -> Result<Transfer> {
        let mut t = sys::mmsb_transfer_info {
            struct_size: std::mem::size_of::<sys::mmsb_transfer_info>() as u32,
            ..Default::default()
        };
        check(unsafe { sys::mmsb_export(self.h, out.as_raw_fd(), &mut t) })?;
        Transfer::from_sys(&t)
    }

    /// The state root as 32 hex digits.
    pub fn state_root(&mut self) -> Result<String> {
        let mut d = sys::mmsb_digest::default();
        check(unsafe { sys::mmsb_state_root(self.h, &mut d) })?;
        hex(&d)
    }

    /// The page's digest (a hash tree over its 4 KiB chunks) as 32 hex digits.
    pub fn page_digest(&mut self, page_id: u64) -> Result<String> {
        let mut d = sys::mmsb_digest::default();
        check(unsafe { sys::mmsb_page_digest(self.h, page_id, &mut d) })?;
        hex(&d)
    }

    /// mmsb_engineinfo: counters, limits, log and checkpoint state.
    pub fn info(&mut self) -> Result<sys::mmsb_engineinfo> {
        let mut i: sys::mmsb_engineinfo = unsafe { std::mem::zeroed() };
        i.struct_size = std::mem::size_of::<sys::mmsb_engineinfo>() as u32;
        check(unsafe { sys::mmsb_engine_info(self.h, &mut i) })?;
        Ok(i)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if self.owned && !self.h.is_null() {
            unsafe { sys::mmsb_close(self.h) };
        }
    }
}

/// Staged changes over any pages, committed atomically by `commit`; dropped
/// without a commit, it aborts.
pub struct Transaction<'e> {
    h: *mut sys::mmsb_txn,
    engine: &'e mut Engine,
}

impl<'e> Transaction<'e> {
    /// Stages a write of `bytes` at `offset`; nothing changes until `commit`.
    pub fn write(&mut self, page_id: u64, offset: u64, bytes: &[u8]) -> Result<()> {
        check(unsafe {
            sys::mmsb_txn_write(self.h, page_id, offset, bytes.as_ptr() as *const c_void, bytes.len() as u64)
        })
    }

    /// Stages a delta; nothing changes until `commit`.
    pub fn apply(&mut self, delta: &Delta<'_>) -> Result<()> {
        let mut ones = Vec::new();
        let d = delta.raw(&mut ones)?;
        check(unsafe { sys::mmsb_txn_apply(self.h, &d) })
    }

    /// Applies everything staged as one commit, all or nothing.
    pub fn commit(mut self) -> Result<CommitResult> {
        let mut r = new_result();
        let h = std::mem::replace(&mut self.h, ptr::null_mut());
        // The engine is borrowed mutably by this transaction: no other
        // thread holds its writer role, so MMSB_EBUSY cannot leave it open.
        let rc = unsafe { sys::mmsb_txn_commit(h, 0, &mut r) };
        self.engine.finish(rc)?;
        Ok(result_of(&r))
    }

    /// Drops everything staged; nothing changes.
    pub fn abort(mut self) -> Result<()> {
        let h = std::mem::replace(&mut self.h, ptr::null_mut());
        check(unsafe { sys::mmsb_txn_abort(h) })
    }
}

impl<'e> Drop for Transaction<'e> {
    fn drop(&mut self) {
        if !self.h.is_null() {
            unsafe { sys::mmsb_txn_abort(self.h) };
        }
    }
}

/// A read-only view of the pages of an engine another process runs on a
/// directory: reads take no lock and are consistent (all bytes of one
/// epoch). A freed page, and every page once the writer closes, is
/// `ErrorKind::NotFound`. Detached on `Drop`.
pub struct Attach {
    h: *mut sys::mmsb_attach,
}

unsafe impl Send for Attach {}

impl Attach {
    /// Attaches to the engine running on directory `dir`.
    pub fn open<P: AsRef<Path>>(dir: P) -> Result<Attach> {
        let path = c_path(dir)?;
        let mut h = ptr::null_mut();
        check(unsafe { sys::mmsb_attach_open(path.as_ptr(), &mut h) })?;
        Ok(Attach { h })
    }

    /// Fills `buf` from `offset` of the page and returns the epoch it is of.
    pub fn read(&mut self, page_id: u64, offset: u64, buf: &mut [u8]) -> Result<u64> {
        let mut epoch = 0;
        check(unsafe {
            sys::mmsb_attach_read(self.h, page_id, offset, buf.as_mut_ptr() as *mut c_void, buf.len() as u64, &mut epoch)
        })?;
        Ok(epoch)
    }

    /// The page's id, size, epoch and place as the running engine has them now.
    pub fn page_info(&mut self, page_id: u64) -> Result<PageInfo> {
        let mut i = sys::mmsb_pageinfo {
            struct_size: std::mem::size_of::<sys::mmsb_pageinfo>() as u32,
            ..Default::default()
        };
        check(unsafe { sys::mmsb_attach_page_info(self.h, page_id, &mut i) })?;
        Ok(PageInfo { page_id: i.page_id, size: i.size_bytes, epoch: i.epoch, location: i.location })
    }
}

impl Drop for Attach {
    fn drop(&mut self) {
        unsafe { sys::mmsb_attach_close(self.h) };
    }
}

/// A follower: keeps a replica store from a replication stream
/// (README, "Replication"). Closed when dropped.
pub struct Replica {
    h: *mut sys::mmsb_replica,
}

impl Replica {
    /// Opens the replica in `dir` (created when needed) following `stream`;
    /// its pages live under the default limits.
    pub fn open<P: AsRef<Path>>(dir: P, servers: &str, stream: &str) -> Result<Replica> {
        Replica::open_inner(dir.as_ref(), servers, stream, None)
    }

    /// The same, with the limits of the replica's pages (arena_bytes_max,
    /// pages_max, page_bytes_max, ...) taken from `limits`
    /// (mmsb_replica_open_with).
    pub fn open_with<P: AsRef<Path>>(dir: P, servers: &str, stream: &str, limits: &Options) -> Result<Replica> {
        Replica::open_inner(dir.as_ref(), servers, stream, Some(limits))
    }

    fn open_inner(dir: &Path, servers: &str, stream: &str, limits: Option<&Options>) -> Result<Replica> {
        let d = c_path(dir)?;
        let sv = CString::new(servers).map_err(|_| invalid("servers contains a NUL byte"))?;
        let st = CString::new(stream).map_err(|_| invalid("stream contains a NUL byte"))?;
        let o = limits.map_or(ptr::null(), |l| &l.0 as *const sys::mmsb_options);
        let mut h = ptr::null_mut();
        check(unsafe { sys::mmsb_replica_open_with(d.as_ptr(), sv.as_ptr(), st.as_ptr(), o, &mut h) })?;
        Ok(Replica { h })
    }

    /// The replica's pages as a read-only engine (mmsb_replica_engine): the
    /// reading calls of `Engine` (through `Deref`) and `state_root`,
    /// `page_digest` and `info`; no writing call is offered. It borrows the
    /// replica, so it cannot outlive it, and it is never closed by itself:
    /// the replica closes it.
    pub fn engine(&mut self) -> Result<ReplicaEngine<'_>> {
        let mut h = ptr::null_mut();
        check(unsafe { sys::mmsb_replica_engine(self.h, &mut h) })?;
        Ok(ReplicaEngine { e: Engine { h, owned: false, hooks: Hooks::new() }, _replica: PhantomData })
    }

    /// Takes the stream's messages until none came for `timeout_ms`; how many.
    pub fn poll(&mut self, timeout_ms: u32) -> Result<u64> {
        let mut taken = 0;
        check(unsafe { sys::mmsb_replica_poll(self.h, timeout_ms, &mut taken) })?;
        Ok(taken)
    }

    /// What the replica holds, the stream's end, the lag.
    pub fn info(&mut self) -> Result<sys::mmsb_replica_info> {
        let mut i = sys::mmsb_replica_info {
            struct_size: std::mem::size_of::<sys::mmsb_replica_info>() as u32,
            ..Default::default()
        };
        check(unsafe { sys::mmsb_replica_info_get(self.h, &mut i) })?;
        Ok(i)
    }
}

/// A replica's pages, borrowed from its Replica (see Replica::engine).
pub struct ReplicaEngine<'r> {
    e: Engine, // not owned: dropping it closes nothing
    _replica: PhantomData<&'r mut Replica>,
}

impl std::ops::Deref for ReplicaEngine<'_> {
    type Target = Engine;
    fn deref(&self) -> &Engine {
        &self.e
    }
}

// No DerefMut: a `&mut Engine` could be swapped out of the borrow and
// outlive the replica. The reading calls that take `&mut` are here instead,
// and the writing calls are not offered at all.
impl ReplicaEngine<'_> {
    /// The replica's state root (see `Engine::state_root`).
    pub fn state_root(&mut self) -> Result<String> {
        self.e.state_root()
    }

    /// A page's digest (see `Engine::page_digest`).
    pub fn page_digest(&mut self, page_id: u64) -> Result<String> {
        self.e.page_digest(page_id)
    }

    /// The counters of the replica's engine (see `Engine::info`).
    pub fn info(&mut self) -> Result<sys::mmsb_engineinfo> {
        self.e.info()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        unsafe { sys::mmsb_replica_close(self.h) };
    }
}

/// What [`Engine::export`] wrote or [`import`] read (mmsb_transfer_info).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// Live pages.
    pub pages: u64,
    /// Derived pages among them.
    pub derived: u64,
    /// Their sizes, summed.
    pub page_bytes: u64,
    /// The stream's length in bytes.
    pub stream_bytes: u64,
    /// The source's last record the state holds (0: no commit).
    pub commit_seq: u64,
    /// The id the next page created gets.
    pub page_id_next: u64,
    /// The state root, 32 hex digits.
    pub state_root: String,
}

impl Transfer {
    fn from_sys(t: &sys::mmsb_transfer_info) -> Result<Transfer> {
        Ok(Transfer {
            pages: t.pages,
            derived: t.derived,
            page_bytes: t.page_bytes,
            stream_bytes: t.stream_bytes,
            commit_seq: t.commit_seq,
            page_id_next: t.page_id_next,
            state_root: hex(&t.state_root)?,
        })
    }
}

/// Makes a new store in `dir` (absent, or an empty directory) from the
/// export stream read from `input` to its end (mmsb_import). Every frame
/// is checked and the state root must match the stream's; on any error
/// nothing is left at `dir`.
pub fn import<P: AsRef<Path>, F: AsRawFd>(dir: P, input: &F, options: &Options) -> Result<Transfer> {
    let d = c_path(dir)?;
    let mut t = sys::mmsb_transfer_info {
        struct_size: std::mem::size_of::<sys::mmsb_transfer_info>() as u32,
        ..Default::default()
    };
    check(unsafe { sys::mmsb_import(d.as_ptr(), &options.0, input.as_raw_fd(), &mut t) })?;
    Transfer::from_sys(&t)
}

/// Makes the replica in `dir` a store a writer opens (mmsb_promote); with
/// `servers`, it must hold the stream's last group unless `force`.
pub fn promote<P: AsRef<Path>>(dir: P, servers: Option<&str>, force: bool) -> Result<()> {
    let d = c_path(dir)?;
    let sv = match servers {
        Some(s) => Some(CString::new(s).map_err(|_| invalid("servers contains a NUL byte"))?),
        None => None,
    };
    let p = sv.as_ref().map_or(ptr::null(), |c| c.as_ptr());
    check(unsafe { sys::mmsb_promote(d.as_ptr(), p, if force { 1 } else { 0 }) })
}

/// A device page's copy (see `Engine::device_view`).
#[derive(Clone, Copy, Debug)]
pub struct DeviceView {
    /// Its first byte, in device memory (host memory on the emulated device).
    pub data: *const c_void,
    /// Its size in bytes.
    pub size: u64,
    /// The epoch the copy holds.
    pub epoch: u64,
    /// The device's kind (2: emulated, 3: CUDA).
    pub device: u32,
    /// The stream later changes of the copy are ordered on (a `cudaStream_t`; 0: emulated).
    pub stream: u64,
}

/// A page's bytes without a copy (see `Engine::view`); derefs to `[u8]`.
pub struct PageView<'e> {
    bytes: &'e [u8],
    epoch: u64,
}

impl PageView<'_> {
    /// The epoch of the bytes.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
}

impl std::ops::Deref for PageView<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.bytes
    }
}

/// One record of a store's log, as `LogReader` yields it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The record's type (MMSB_REC_*: 1 PAGE_CREATE, 2 PAGE_FREE, 3 DELTA, 4 COMMIT, ...).
    pub kind: u32,
    /// Its sequence number in the log.
    pub seq: u64,
    /// The segment that holds it, and its offset there.
    pub segment: u64,
    /// The offset of the record in its segment.
    pub offset: u64,
    /// The page it is about (0 for none).
    pub page_id: u64,
    /// The page's epoch it made (0 for none).
    pub epoch: u64,
    /// Whether a commit record that follows commits it.
    pub committed: bool,
    /// The record's payload as the log holds it.
    pub payload: Vec<u8>,
}

/// The records of a store's log, each checked as it is read (read-only; it
/// works while a writer appends). An iterator of `Result<Record>`: a damaged
/// record ends it with the error.
pub struct LogReader {
    h: *mut sys::mmsb_log_reader,
    failed: bool,
}

unsafe impl Send for LogReader {}

impl LogReader {
    /// Opens the log of the store in directory `dir`.
    pub fn open<P: AsRef<Path>>(dir: P) -> Result<LogReader> {
        let path = c_path(dir)?;
        let mut h = ptr::null_mut();
        check(unsafe { sys::mmsb_log_open(path.as_ptr(), 0, &mut h) })?;
        Ok(LogReader { h, failed: false })
    }
}

impl Iterator for LogReader {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        if self.failed {
            return None;
        }
        let mut r: sys::mmsb_log_record = unsafe { std::mem::zeroed() };
        r.struct_size = std::mem::size_of::<sys::mmsb_log_record>() as u32;
        if let Err(e) = check(unsafe { sys::mmsb_log_next(self.h, &mut r) }) {
            self.failed = true;
            return Some(Err(e));
        }
        if r.kind == 0 {
            return None; // MMSB_REC_END
        }
        let payload = if r.payload_len == 0 || r.payload.is_null() {
            Vec::new()
        } else {
            // Valid until the next call on this reader: copied out here.
            unsafe { std::slice::from_raw_parts(r.payload, r.payload_len as usize) }.to_vec()
        };
        Some(Ok(Record {
            kind: r.kind,
            seq: r.seq,
            segment: r.segment,
            offset: r.offset,
            page_id: r.page_id,
            epoch: r.epoch,
            committed: r.committed != 0,
            payload,
        }))
    }
}

impl Drop for LogReader {
    fn drop(&mut self) {
        unsafe { sys::mmsb_log_close(self.h) };
    }
}
