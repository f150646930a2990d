//! memleak's own record of the outstanding allocations, read from its BPF
//! map (`allocs`: address → size, time, stack id) while it runs.
//!
//! memleak's report leaves out every allocation whose stack it could not
//! store: `get_stackid` fails when the stack's bucket in its stack map
//! (10240 entries, 16384 buckets) already holds another stack, and the
//! report skips a negative id without a word. The allocation itself is in
//! `allocs`, so we read it from there: a program with some thousand distinct
//! stacks loses a third of its leaks otherwise, and any program one block
//! now and then (one stack in ~16000 collides with each other stack).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::error::Error;

/// The map's name and layout in bcc 0.26's memleak: `BPF_HASH(allocs, u64,
/// struct alloc_info_t, 1000000)` with `{u64 size; u64 timestamp_ns; int
/// stack_id;}` (24 bytes with padding).
const NAME: &[u8] = b"allocs";
const KEY_SIZE: u32 = 8;
const VALUE_SIZE: u32 = 24;

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
const BPF_MAP_GET_FD_BY_ID: libc::c_long = 14;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_F_RDONLY: u32 = 1 << 3;

/// What `allocs` holds beyond memleak's report.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Allocs {
    /// Outstanding allocations without a stack: (address, size, the
    /// negative errno `get_stackid` returned).
    pub stackless: Vec<(u64, u64, i32)>,
    /// Every entry of the map.
    pub entries: u64,
    /// The map's capacity: once full, memleak records nothing more.
    pub max_entries: u32,
}

#[repr(C)]
#[derive(Default)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value_or_next_key: u64,
    flags: u64,
}

#[repr(C)]
#[derive(Default)]
struct GetIdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The head of `struct bpf_map_info`, as far as we read it.
#[repr(C)]
#[derive(Default)]
struct MapInfo {
    map_type: u32,
    id: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    name: [u8; 16],
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a #[repr(C)] prefix of `union bpf_attr` for `cmd`;
    // the kernel reads (and for info, writes) at most its size.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>()) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// The ids of the BPF maps process `pid` holds open (from /proc/PID/fdinfo).
fn map_ids(pid: i32) -> Result<Vec<u32>, Error> {
    let dir = format!("/proc/{pid}/fdinfo");
    let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(std::path::Path::new(&dir), e))?;
    let mut ids = Vec::new();
    for entry in entries.flatten() {
        // An fd closed since the listing is no map of interest.
        let Ok(text) = std::fs::read_to_string(entry.path()) else { continue };
        if let Some(id) = text.lines().find_map(|l| l.strip_prefix("map_id:")).and_then(|v| v.trim().parse().ok()) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

fn open_map(id: u32) -> std::io::Result<(OwnedFd, MapInfo)> {
    let fd = bpf(BPF_MAP_GET_FD_BY_ID, &mut GetIdAttr { id, next_id: 0, open_flags: BPF_F_RDONLY })?;
    // SAFETY: the kernel returned a new fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let mut info = MapInfo::default();
    let mut attr = InfoAttr { bpf_fd: fd.as_raw_fd() as u32, info_len: std::mem::size_of::<MapInfo>() as u32, info: &mut info as *mut MapInfo as u64 };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok((fd, info))
}

/// Reads memleak's `allocs` map; `memleak` is the pid of its Python
/// process, which holds the map open while it runs.
pub fn read(memleak: i32) -> Result<Allocs, Error> {
    let fail = |what: String| Error::Os(format!("reading memleak's `allocs` map (memleak pid {memleak}): {what}"));
    let mut found = None;
    for id in map_ids(memleak)? {
        let (fd, info) = open_map(id).map_err(|e| fail(format!("map id {id}: {e}")))?;
        let name_len = info.name.iter().position(|&b| b == 0).unwrap_or(info.name.len());
        if &info.name[..name_len] == NAME {
            if info.key_size != KEY_SIZE || info.value_size != VALUE_SIZE {
                return Err(fail(format!(
                    "its entries are {} → {} bytes, not {KEY_SIZE} → {VALUE_SIZE} (a memleak other than bcc 0.26's)",
                    info.key_size, info.value_size
                )));
            }
            found = Some((fd, info.max_entries));
            break;
        }
    }
    let Some((fd, max_entries)) = found else {
        return Err(fail("it holds no BPF map of that name (a memleak other than bcc 0.26's?)".into()));
    };
    let map_fd = fd.as_raw_fd() as u32;
    let mut out = Allocs { max_entries, ..Allocs::default() };
    let mut key: Option<u64> = None;
    let mut walked = false;
    // The target is stopped, so no entry goes while we walk; the bound
    // only keeps a walk that restarts (a hash map's next key after a
    // missing one is its first) from going round for ever.
    for _ in 0..=u64::from(max_entries) * 2 {
        let mut next = 0u64;
        let mut attr = ElemAttr {
            map_fd,
            key: key.as_ref().map_or(0, |k| k as *const u64 as u64),
            value_or_next_key: &mut next as *mut u64 as u64,
            ..ElemAttr::default()
        };
        match bpf(BPF_MAP_GET_NEXT_KEY, &mut attr) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                walked = true;
                break;
            }
            Err(e) => return Err(fail(format!("next key: {e}"))),
        }
        key = Some(next);
        let mut value = [0u8; VALUE_SIZE as usize];
        let mut attr = ElemAttr { map_fd, key: &next as *const u64 as u64, value_or_next_key: value.as_mut_ptr() as u64, ..ElemAttr::default() };
        match bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) {
            Ok(_) => {}
            // Freed between the two calls (the target runs with `--after`
            // until stopped; memleak may be deleting): not outstanding.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(fail(format!("lookup: {e}"))),
        }
        out.entries += 1;
        let size = u64::from_ne_bytes(value[0..8].try_into().expect("8 bytes"));
        let stack_id = i32::from_ne_bytes(value[16..20].try_into().expect("4 bytes"));
        if stack_id < 0 {
            out.stackless.push((next, size, stack_id));
        }
    }
    if !walked {
        return Err(fail(format!("the walk of its keys did not end after {} steps", u64::from(max_entries) * 2 + 1)));
    }
    out.stackless.sort_unstable();
    Ok(out)
}

/// What a negative stack id from `bpf_get_stackid` means.
#[must_use]
pub fn stackid_error(id: i32) -> &'static str {
    match -id {
        libc::EEXIST => "its bucket in memleak's stack map held another stack",
        libc::ENOMEM => "memleak's stack map was full",
        libc::EFAULT => "the stack could not be read",
        _ => "bpf_get_stackid failed",
    }
}
