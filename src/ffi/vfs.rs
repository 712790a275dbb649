//! The C glue of the store's WAL-gathering VFS (the policy, and why, is
//! src/store/sqlite/wal_gather.rs): a VFS over SQLite's default one
//! ("unix") whose WAL files hand their writes to a `Gather` and write what
//! it gathered before any other use. Only pointer checks and conversions
//! here, with SQLite's C types from libsqlite3-sys; every other file is the
//! default VFS's own object.
//!
//! The only item the store uses is [`vfs_name`]; nothing here is part of
//! the C API.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use libsqlite3_sys as ffi;

use crate::store::sqlite::wal_gather::Gather;

/// The name this VFS is registered under.
const NAME: &CStr = c"jobq-unix";
/// The open WAL file: our methods, then the default VFS's file object
/// (`szOsFile` bytes) right after this struct, in the memory SQLite
/// allocated for the file.
#[repr(C)]
struct WalFile {
    base: ffi::sqlite3_file,
    /// The default VFS's file object (inside the same allocation).
    real: *mut ffi::sqlite3_file,
    gather: Gather,
}

/// The default VFS, found once.
struct Registered {
    real: *mut ffi::sqlite3_vfs,
}

// SAFETY: the pointer is to the default VFS object, which SQLite keeps for
// the life of the process and which is only read here.
unsafe impl Send for Registered {}
// SAFETY: as for Send: shared read-only access to a process-lifetime object.
unsafe impl Sync for Registered {}

static REGISTERED: OnceLock<Result<Registered, String>> = OnceLock::new();

/// The name of the gathering VFS, registered on the first call; `Err` if
/// SQLite has no default VFS to wrap or refuses the registration (then
/// stores open with the default VFS).
pub(crate) fn vfs_name() -> Result<&'static str, String> {
    match REGISTERED.get_or_init(register) {
        Ok(_) => Ok("jobq-unix"),
        Err(e) => Err(e.clone()),
    }
}

fn register() -> Result<Registered, String> {
    // SAFETY: sqlite3_initialize and sqlite3_vfs_find(NULL) are safe to call
    // at any time; the result is NULL or the default VFS, valid for ever.
    let real = unsafe {
        ffi::sqlite3_initialize();
        ffi::sqlite3_vfs_find(std::ptr::null())
    };
    if real.is_null() {
        return Err("SQLite has no default VFS".into());
    }
    // SAFETY: real is a valid VFS (above); copying the struct reads it.
    let mut ours: ffi::sqlite3_vfs = unsafe { std::ptr::read(real) };
    let real_size = ours.szOsFile;
    ours.szOsFile = (std::mem::size_of::<WalFile>() as c_int).saturating_add(real_size);
    ours.zName = NAME.as_ptr();
    ours.pNext = std::ptr::null_mut();
    ours.xOpen = Some(x_open);
    // The other methods are the default VFS's own; the unix VFS's ignore
    // their VFS argument or read fields copied here unchanged (mxPathname,
    // pAppData).
    let ours = Box::leak(Box::new(ours));
    // SAFETY: ours is a complete VFS object that lives for ever (leaked);
    // registering it as not-default leaves every other user of SQLite alone.
    let rc = unsafe { ffi::sqlite3_vfs_register(ours, 0) };
    if rc != ffi::SQLITE_OK {
        return Err(format!("sqlite3_vfs_register failed ({rc})"));
    }
    Ok(Registered { real })
}

fn real_vfs() -> *mut ffi::sqlite3_vfs {
    match REGISTERED.get() {
        Some(Ok(r)) => r.real,
        _ => std::ptr::null_mut(),
    }
}

static WAL_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 1,
    xClose: Some(x_close),
    xRead: Some(x_read),
    xWrite: Some(x_write),
    xTruncate: Some(x_truncate),
    xSync: Some(x_sync),
    xFileSize: Some(x_file_size),
    xLock: Some(x_lock),
    xUnlock: Some(x_unlock),
    xCheckReservedLock: Some(x_check_reserved_lock),
    xFileControl: Some(x_file_control),
    xSectorSize: Some(x_sector_size),
    xDeviceCharacteristics: Some(x_device_characteristics),
    xShmMap: None,
    xShmLock: None,
    xShmBarrier: None,
    xShmUnmap: None,
    xFetch: None,
    xUnfetch: None,
};

unsafe extern "C" fn x_open(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let real = real_vfs();
    if real.is_null() {
        return ffi::SQLITE_CANTOPEN;
    }
    // SAFETY: real is the default VFS (registered before ours could be
    // used), whose xOpen is set.
    let Some(real_open) = (unsafe { (*real).xOpen }) else {
        return ffi::SQLITE_CANTOPEN;
    };
    let _ = vfs;
    if flags & ffi::SQLITE_OPEN_WAL == 0 {
        // SAFETY: SQLite gave `file` our szOsFile bytes, more than the
        // default VFS's; the default VFS then owns the object (its methods).
        return unsafe { real_open(real, name, file, flags, out_flags) };
    }
    let wal = file.cast::<WalFile>();
    // SAFETY: `file` has szOsFile = size_of::<WalFile>() + the default
    // VFS's size bytes, suitably aligned by SQLite's allocator (8 bytes,
    // which WalFile needs); the default VFS's object goes after WalFile.
    let real_file = unsafe { file.cast::<u8>().add(std::mem::size_of::<WalFile>()) }.cast::<ffi::sqlite3_file>();
    // SAFETY: real_file points to the default VFS's share of the allocation.
    let rc = unsafe { real_open(real, name, real_file, flags, out_flags) };
    if rc != ffi::SQLITE_OK {
        // SAFETY: `file` is ours to set; NULL methods tell SQLite not to close it.
        unsafe { (*file).pMethods = std::ptr::null() };
        return rc;
    }
    // SAFETY: `wal` is valid for writes of a WalFile (above); its memory is
    // uninitialised, so it is written whole, not assigned field by field.
    unsafe {
        std::ptr::write(
            wal,
            WalFile { base: ffi::sqlite3_file { pMethods: &WAL_METHODS }, real: real_file, gather: Gather::default() },
        )
    };
    ffi::SQLITE_OK
}

/// The WalFile behind a file object opened by x_open with SQLITE_OPEN_WAL.
///
/// # Safety
/// `file` must be such an object, not yet closed, used by one thread at a
/// time (SQLite serialises the calls on a connection's files).
unsafe fn wal<'a>(file: *mut ffi::sqlite3_file) -> &'a mut WalFile {
    // SAFETY: the caller's contract.
    unsafe { &mut *file.cast::<WalFile>() }
}

/// The default VFS's methods of its open file `real` (a WalFile's `real`).
fn methods(real: *mut ffi::sqlite3_file) -> &'static ffi::sqlite3_io_methods {
    // SAFETY: real was opened by the default VFS, which set pMethods to its
    // static method table (non-NULL after a successful open).
    unsafe { &*(*real).pMethods }
}

/// Writes what `w` gathered, through the default VFS.
fn flush(w: &mut WalFile) -> c_int {
    let real = w.real;
    status(w.gather.flush(&mut real_write(real)))
}

/// The default VFS's write of `real`, for a `Gather`.
fn real_write(real: *mut ffi::sqlite3_file) -> impl FnMut(&[u8], i64) -> Result<(), c_int> {
    move |buf, at| {
        let Some(write) = methods(real).xWrite else {
            return Err(ffi::SQLITE_IOERR_WRITE);
        };
        let Ok(len) = c_int::try_from(buf.len()) else {
            return Err(ffi::SQLITE_IOERR_WRITE);
        };
        // SAFETY: real is the open default-VFS file; buf is live for len bytes.
        match unsafe { write(real, buf.as_ptr().cast::<c_void>(), len, at) } {
            ffi::SQLITE_OK => Ok(()),
            rc => Err(rc),
        }
    }
}

fn status(r: Result<(), c_int>) -> c_int {
    r.err().unwrap_or(ffi::SQLITE_OK)
}

/// Runs `f` and turns a panic (there should be none) into an I/O error.
fn guarded(f: impl FnOnce() -> c_int) -> c_int {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(ffi::SQLITE_IOERR)
}

unsafe extern "C" fn x_write(file: *mut ffi::sqlite3_file, data: *const c_void, amount: c_int, offset: i64) -> c_int {
    // SAFETY: SQLite calls this on a WAL file opened by x_open.
    let w = unsafe { wal(file) };
    guarded(|| {
        let Ok(len) = usize::try_from(amount) else {
            return ffi::SQLITE_IOERR_WRITE;
        };
        let bytes: &[u8] = if len == 0 {
            &[]
        } else if data.is_null() {
            return ffi::SQLITE_IOERR_WRITE;
        } else {
            // SAFETY: SQLite passes `amount` readable bytes at `data` (checked non-NULL).
            unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) }
        };
        let real = w.real;
        status(w.gather.write(bytes, offset, &mut real_write(real)))
    })
}

unsafe extern "C" fn x_close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite calls this once on a WAL file opened by x_open.
    let w = unsafe { wal(file) };
    let rc = guarded(|| flush(w));
    let close = methods(w.real).xClose;
    // SAFETY: drops the buffer exactly once; the object is not used again.
    unsafe { std::ptr::drop_in_place(&mut w.gather) };
    let closed = match close {
        // SAFETY: closes the default VFS's open file.
        Some(close) => unsafe { close(w.real) },
        None => ffi::SQLITE_OK,
    };
    if rc != ffi::SQLITE_OK {
        rc
    } else {
        closed
    }
}

/// Flushes, then forwards to the default VFS's method `pick`.
macro_rules! forward {
    ($name:ident, $pick:ident, ($($arg:ident: $ty:ty),*)) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> c_int {
            // SAFETY: SQLite calls this on a WAL file opened by x_open.
            let w = unsafe { wal(file) };
            guarded(|| {
                let rc = flush(w);
                if rc != ffi::SQLITE_OK {
                    return rc;
                }
                match methods(w.real).$pick {
                    // SAFETY: the default VFS's method on its own open file,
                    // with SQLite's arguments unchanged.
                    Some(f) => unsafe { f(w.real $(, $arg)*) },
                    None => ffi::SQLITE_IOERR,
                }
            })
        }
    };
}

forward!(x_read, xRead, (buf: *mut c_void, amount: c_int, offset: i64));
forward!(x_truncate, xTruncate, (size: i64));
forward!(x_sync, xSync, (flags: c_int));
forward!(x_file_size, xFileSize, (size: *mut i64));
forward!(x_lock, xLock, (level: c_int));
forward!(x_unlock, xUnlock, (level: c_int));
forward!(x_check_reserved_lock, xCheckReservedLock, (out: *mut c_int));
forward!(x_file_control, xFileControl, (op: c_int, arg: *mut c_void));

unsafe extern "C" fn x_sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite calls this on a WAL file opened by x_open.
    let w = unsafe { wal(file) };
    match methods(w.real).xSectorSize {
        // SAFETY: the default VFS's method on its own open file.
        Some(f) => unsafe { f(w.real) },
        None => 4096,
    }
}

unsafe extern "C" fn x_device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite calls this on a WAL file opened by x_open.
    let w = unsafe { wal(file) };
    match methods(w.real).xDeviceCharacteristics {
        // SAFETY: the default VFS's method on its own open file.
        Some(f) => unsafe { f(w.real) },
        None => 0,
    }
}
