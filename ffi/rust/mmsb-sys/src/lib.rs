//! The raw C ABI of libmmsb, as declared in mmsb.h: `#[repr(C)]` structs and
//! every exported function, one for one (the header documents them). Its
//! build script links libmmsb (MMSB_LIB_DIR, then pkg-config, then the
//! repository's build). Everything here is unsafe to use directly; the
//! `mmsb` crate wraps it safely.
#![allow(non_camel_case_types)]

use std::os::raw::{c_char, c_int, c_void};

pub const MMSB_ABI_VERSION: u32 = 1;

pub enum mmsb_engine {}
pub enum mmsb_txn {}
pub enum mmsb_log_reader {}
pub enum mmsb_attach {}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct mmsb_digest {
    pub bytes: [u8; 16],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct mmsb_options {
    pub struct_size: u32,
    pub abi_version: u32,
    pub flags: u32,
    pub kernel: u32,
    pub arena_bytes_max: u64,
    pub arena_grow_bytes: u64,
    pub arena_prefault_bytes: u64,
    pub page_bytes_max: u64,
    pub pages_max: u64,
    pub gpu: u32,
    pub reserved0: u32,
    pub durability: u32,
    pub io_backend: u32,
    pub segment_bytes: u64,
    pub log_buffer_bytes: u64,
    pub group_window_us: u64,
    pub group_window_bytes: u64,
    pub root_every_commits: u32,
    pub propagation: u32,
    pub commit_bytes_max: u64,
    pub txn_bytes_max: u64,
    pub checkpoint_log_bytes: u64,
    pub checkpoint_map_bytes: u64,
    pub checkpoint_map_bytes_max: u64,
    pub checkpoint_readers: u32,
    pub reserved2: u32,
    pub replication_servers: *const c_char,
    pub replication_stream: *const c_char,
    pub replication_timeout_ms: u64,
    pub replication_create: u32,
    pub reserved3: u32,
    pub gpu_threshold_bytes: u64,
}

impl Default for mmsb_options {
    fn default() -> Self {
        // All zero (null strings): mmsb_options_init fills the defaults.
        unsafe { std::mem::zeroed() }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct mmsb_replica_info {
    pub struct_size: u32,
    pub reserved0: u32,
    pub commit_seq: u64,
    pub commits: u64,
    pub stream_seq: u64,
    pub stream_last_seq: u64,
    pub lag_records: u64,
    pub lag_ns: u64,
    pub messages: u64,
    pub groups: u64,
    pub bytes_written: u64,
    pub tail_cut_bytes: u64,
    pub lag_bytes: u64,
}

pub enum mmsb_replica {}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct mmsb_engineinfo {
    pub struct_size: u32,
    pub reserved0: u32,
    pub kernel: [c_char; 16],
    pub gpu: [c_char; 96],
    pub pages_live: u64,
    pub page_id_next: u64,
    pub pages_max: u64,
    pub page_bytes_max: u64,
    pub arena_bytes_max: u64,
    pub arena_bytes_used: u64,
    pub arena_bytes_faulted: u64,
    pub commit_seq: u64,
    pub io_backend: [c_char; 16],
    pub io_reason: [c_char; 128],
    pub durability: u32,
    pub recovery_flags: u32,
    pub durable_seq: u64,
    pub log_segment: u64,
    pub log_bytes_written: u64,
    pub log_writes: u64,
    pub log_syncs: u64,
    pub recovered_commits: u64,
    pub recovered_records: u64,
    pub recovery_dropped_records: u64,
    pub recovery_dropped_bytes: u64,
    pub recovery_detail: [c_char; 256],
    pub commits: u64,
    pub recomputes: u64,
    pub skips: u64,
    pub backdates: u64,
    pub delta_propagations: u64,
    pub aborts: u64,
    pub derived_pages: u64,
    pub edges: u64,
    pub checkpoint_number: u64,
    pub checkpoint_seq: u64,
    pub checkpoints_written: u64,
    pub checkpoint_stall_ns_last: u64,
    pub checkpoint_stall_ns_max: u64,
    pub checkpoint_map_bytes: u64,
    pub log_segment_first: u64,
    pub log_segments_removed: u64,
    pub recovered_from_checkpoint: u32,
    pub reserved1: u32,
    pub checkpoint_detail: [c_char; 160],
    pub replicated_seq: u64,
    pub replication_lag_records: u64,
    pub replication_messages: u64,
    pub replication_bytes: u64,
    pub replication: [c_char; 200],
    pub replication_lag_bytes: u64,
    pub gpu_device: [c_char; 64],
    pub gpu_threshold_bytes: u64,
    pub gpu_threshold_source: u32,
    pub gpu_lost: u32,
    pub gpu_pages: u64,
    pub gpu_page_bytes: u64,
    pub gpu_calls: u64,
    pub gpu_fallbacks: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct mmsb_device_view {
    pub struct_size: u32,
    pub device: u32,
    pub data: *const c_void,
    pub size_bytes: u64,
    pub epoch: u64,
    pub stream: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct mmsb_pageinfo {
    pub struct_size: u32,
    pub location: u32,
    pub page_id: u64,
    pub size_bytes: u64,
    pub epoch: u64,
    pub flags: u32,
    pub reserved0: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct mmsb_transfer_info {
    pub struct_size: u32,
    pub reserved: u32,
    pub pages: u64,
    pub derived: u64,
    pub page_bytes: u64,
    pub stream_bytes: u64,
    pub commit_seq: u64,
    pub page_id_next: u64,
    pub state_root: mmsb_digest,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct mmsb_change {
    pub epoch: u64,
    pub bytes_changed: u64,
    pub commit_seq: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct mmsb_delta {
    pub page_id: u64,
    pub offset: u64,
    pub len: u64,
    pub mask: *const u8,
    pub payload: *const u8,
    pub payload_len: u64,
    pub expected_epoch: u64,
    pub flags: u32,
    pub reserved0: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct mmsb_commit_result {
    pub struct_size: u32,
    pub reserved0: u32,
    pub commit_seq: u64,
    pub pages_changed: u64,
    pub bytes_changed: u64,
    pub recomputes: u64,
    pub skips: u64,
    pub backdates: u64,
    pub delta_propagations: u64,
}

#[repr(C)]
pub struct mmsb_op_input {
    pub child_id: u64,
    pub parent_count: u32,
    pub op_version: u32,
    pub parent_ids: *const u64,
    pub parent_epochs: *const u64,
    pub parent_bytes: *const *const u8,
    pub parent_sizes: *const u64,
    pub params: *const u8,
    pub params_len: u64,
}

pub type mmsb_op_fn =
    Option<unsafe extern "C" fn(user: *mut c_void, input: *const mmsb_op_input, out: *mut u8, out_len: u64) -> c_int>;

#[repr(C)]
pub struct mmsb_derive_spec {
    pub struct_size: u32,
    pub op: u32,
    pub parents: *const u64,
    pub parent_count: u32,
    pub flags: u32,
    pub params: *const c_void,
    pub params_len: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct mmsb_deriveinfo {
    pub struct_size: u32,
    pub op: u32,
    pub op_version: u32,
    pub parent_count: u32,
    pub child_count: u32,
    pub params_len: u32,
    pub signature: mmsb_digest,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct mmsb_event {
    pub kind: u32,
    pub flags: u32,
    pub commit_seq: u64,
    pub page_id: u64,
    pub epoch: u64,
    pub bytes_changed: u64,
}

pub type mmsb_event_fn = Option<unsafe extern "C" fn(user: *mut c_void, event: *const mmsb_event)>;

#[repr(C)]
pub struct mmsb_log_record {
    pub struct_size: u32,
    pub kind: u32,
    pub seq: u64,
    pub segment: u64,
    pub offset: u64,
    pub generation: u32,
    pub payload_len: u32,
    pub payload: *const u8,
    pub page_id: u64,
    pub size_bytes: u64,
    pub epoch: u64,
    pub offset_in_page: u64,
    pub len: u64,
    pub mask: *const u8,
    pub bytes: *const u8,
    pub bytes_len: u64,
    pub first_seq: u64,
    pub has_root: u32,
    pub committed: u32,
    pub chain: mmsb_digest,
    pub root: mmsb_digest,
}

extern "C" {
    pub fn mmsb_version(major: *mut c_int, minor: *mut c_int, patch: *mut c_int) -> *const c_char;
    pub fn mmsb_abi_version() -> c_int;
    pub fn mmsb_strerror(code: c_int) -> *const c_char;
    pub fn mmsb_last_error() -> *const c_char;
    pub fn mmsb_options_init(options: *mut mmsb_options, struct_size: u32, abi_version: u32) -> c_int;
    pub fn mmsb_open(dir: *const c_char, options: *const mmsb_options, engine_out: *mut *mut mmsb_engine) -> c_int;
    pub fn mmsb_close(engine: *mut mmsb_engine) -> c_int;
    pub fn mmsb_engine_info(engine: *mut mmsb_engine, info: *mut mmsb_engineinfo) -> c_int;
    pub fn mmsb_page_create(engine: *mut mmsb_engine, size_bytes: u64, flags: u32, page_id_out: *mut u64) -> c_int;
    pub fn mmsb_page_create_many(engine: *mut mmsb_engine, size_bytes: u64, flags: u32, count: u64,
                                 first_id_out: *mut u64) -> c_int;
    pub fn mmsb_page_free(engine: *mut mmsb_engine, page_id: u64) -> c_int;
    pub fn mmsb_page_info(engine: *mut mmsb_engine, page_id: u64, info: *mut mmsb_pageinfo) -> c_int;
    pub fn mmsb_page_read(engine: *mut mmsb_engine, page_id: u64, offset: u64, buf: *mut c_void, len: u64,
                          epoch_out: *mut u64) -> c_int;
    pub fn mmsb_page_view(engine: *mut mmsb_engine, page_id: u64, data_out: *mut *const c_void, size_out: *mut u64,
                          epoch_out: *mut u64) -> c_int;
    pub fn mmsb_page_device_view(engine: *mut mmsb_engine, page_id: u64, view: *mut mmsb_device_view) -> c_int;
    pub fn mmsb_write(engine: *mut mmsb_engine, page_id: u64, offset: u64, bytes: *const c_void, len: u64,
                      change_out: *mut mmsb_change) -> c_int;
    pub fn mmsb_apply(engine: *mut mmsb_engine, delta: *const mmsb_delta, change_out: *mut mmsb_change) -> c_int;
    pub fn mmsb_apply_batch(engine: *mut mmsb_engine, deltas: *const mmsb_delta, count: u64, durability: u32,
                            result: *mut mmsb_commit_result) -> c_int;
    pub fn mmsb_txn_begin(engine: *mut mmsb_engine, txn_out: *mut *mut mmsb_txn) -> c_int;
    pub fn mmsb_txn_write(txn: *mut mmsb_txn, page_id: u64, offset: u64, bytes: *const c_void, len: u64) -> c_int;
    pub fn mmsb_txn_apply(txn: *mut mmsb_txn, delta: *const mmsb_delta) -> c_int;
    pub fn mmsb_txn_commit(txn: *mut mmsb_txn, durability: u32, result: *mut mmsb_commit_result) -> c_int;
    pub fn mmsb_txn_abort(txn: *mut mmsb_txn) -> c_int;
    pub fn mmsb_op_register(engine: *mut mmsb_engine, op: u32, version: u32, f: mmsb_op_fn, user: *mut c_void)
                            -> c_int;
    pub fn mmsb_derive(engine: *mut mmsb_engine, child: u64, spec: *const mmsb_derive_spec,
                       result: *mut mmsb_commit_result) -> c_int;
    pub fn mmsb_underive(engine: *mut mmsb_engine, child: u64, result: *mut mmsb_commit_result) -> c_int;
    pub fn mmsb_edge_add(engine: *mut mmsb_engine, parent: u64, child: u64, result: *mut mmsb_commit_result) -> c_int;
    pub fn mmsb_edge_remove(engine: *mut mmsb_engine, parent: u64, child: u64, result: *mut mmsb_commit_result)
                            -> c_int;
    pub fn mmsb_derive_info(engine: *mut mmsb_engine, page_id: u64, info: *mut mmsb_deriveinfo, parents_out: *mut u64,
                            parents_cap: u32) -> c_int;
    pub fn mmsb_subscribe(engine: *mut mmsb_engine, event_mask: u32, f: mmsb_event_fn, user: *mut c_void,
                          subscription_out: *mut u64) -> c_int;
    pub fn mmsb_unsubscribe(engine: *mut mmsb_engine, subscription: u64) -> c_int;
    pub fn mmsb_sync(engine: *mut mmsb_engine) -> c_int;
    pub fn mmsb_wait_durable(engine: *mut mmsb_engine, commit_seq: u64) -> c_int;
    pub fn mmsb_wait_replicated(engine: *mut mmsb_engine, commit_seq: u64) -> c_int;
    pub fn mmsb_replica_open(
        dir: *const c_char,
        servers: *const c_char,
        stream: *const c_char,
        replica_out: *mut *mut mmsb_replica,
    ) -> c_int;
    pub fn mmsb_replica_poll(replica: *mut mmsb_replica, timeout_ms: u32, taken_out: *mut u64) -> c_int;
    pub fn mmsb_replica_info_get(replica: *mut mmsb_replica, info: *mut mmsb_replica_info) -> c_int;
    pub fn mmsb_replica_close(replica: *mut mmsb_replica) -> c_int;
    pub fn mmsb_replica_open_with(
        dir: *const c_char,
        servers: *const c_char,
        stream: *const c_char,
        options: *const mmsb_options,
        replica_out: *mut *mut mmsb_replica,
    ) -> c_int;
    pub fn mmsb_replica_engine(replica: *mut mmsb_replica, engine_out: *mut *mut mmsb_engine) -> c_int;
    pub fn mmsb_promote(dir: *const c_char, servers: *const c_char, flags: u32) -> c_int;
    pub fn mmsb_set_durability(engine: *mut mmsb_engine, durability: u32) -> c_int;
    pub fn mmsb_checkpoint(engine: *mut mmsb_engine) -> c_int;
    pub fn mmsb_export(engine: *mut mmsb_engine, fd: c_int, info: *mut mmsb_transfer_info) -> c_int;
    pub fn mmsb_import(dir: *const c_char, options: *const mmsb_options, fd: c_int,
                       info: *mut mmsb_transfer_info) -> c_int;
    pub fn mmsb_attach_open(dir: *const c_char, attach_out: *mut *mut mmsb_attach) -> c_int;
    pub fn mmsb_attach_page_info(attach: *mut mmsb_attach, page_id: u64, info: *mut mmsb_pageinfo) -> c_int;
    pub fn mmsb_attach_read(attach: *mut mmsb_attach, page_id: u64, offset: u64, buf: *mut c_void, len: u64,
                            epoch_out: *mut u64) -> c_int;
    pub fn mmsb_attach_close(attach: *mut mmsb_attach) -> c_int;
    pub fn mmsb_page_digest(engine: *mut mmsb_engine, page_id: u64, digest_out: *mut mmsb_digest) -> c_int;
    pub fn mmsb_state_root(engine: *mut mmsb_engine, root_out: *mut mmsb_digest) -> c_int;
    pub fn mmsb_digest_hex(digest: *const mmsb_digest, hex_out: *mut c_char, hex_out_size: usize) -> c_int;
    pub fn mmsb_log_open(dir: *const c_char, flags: u32, reader_out: *mut *mut mmsb_log_reader) -> c_int;
    pub fn mmsb_log_next(reader: *mut mmsb_log_reader, record: *mut mmsb_log_record) -> c_int;
    pub fn mmsb_log_close(reader: *mut mmsb_log_reader) -> c_int;
}
