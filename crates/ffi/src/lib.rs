//! `libshipshape`: Shipshape's libraries behind a stable C ABI.
//!
//! Conventions, the same for every function:
//!
//! - Functions that can fail return an `int`: [`SHIPSHAPE_OK`] (0) on
//!   success, [`SHIPSHAPE_ERROR`] (-1) on failure, with the reason in
//!   [`shipshape_last_error`]. Checks that can come out negative without
//!   failing (a DNS check, a rate-limit check) say so with their own
//!   documented values.
//! - Strings in are NUL-terminated UTF-8; a null pointer or invalid UTF-8
//!   is an error, never a crash. Options are JSON objects (a null pointer
//!   means "all defaults").
//! - Strings out are written to a `char **` the caller passes; each one
//!   is the caller's to release with [`shipshape_string_free`]. Handles
//!   have their own free function. Nothing else needs freeing.
//! - A panic inside the library is caught at the boundary and reported as
//!   [`SHIPSHAPE_PANIC`] (-2); it never unwinds into C.
//! - The async runtime is created on first use and shared; callers never
//!   see it. Every function blocks until its work is done and may be
//!   called from any thread.
//!
//! ```c
//! char *manifest = NULL;
//! if (shipshape_backup_path("/var/backups/repo", "/srv/app",
//!                           "{\"recipients\":[\"age1...\"],\"name\":\"app\"}", &manifest) != SHIPSHAPE_OK) {
//!     fprintf(stderr, "backup failed: %s\n", shipshape_last_error());
//! } else {
//!     puts(manifest);
//!     shipshape_string_free(manifest);
//! }
//! ```

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;

mod api;

pub use api::*;

/// Success.
pub const SHIPSHAPE_OK: c_int = 0;
/// Failure; [`shipshape_last_error`] says why.
pub const SHIPSHAPE_ERROR: c_int = -1;
/// A bug: the library panicked (caught at the boundary);
/// [`shipshape_last_error`] has the panic message.
pub const SHIPSHAPE_PANIC: c_int = -2;

thread_local! {
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

/// An error on its way to C: the message for `shipshape_last_error`.
#[derive(Debug)]
pub(crate) struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}

pub(crate) type Result<T> = std::result::Result<T, Failure>;

fn set_last_error(message: &str) {
    // Interior NULs would cut the message short: show them instead.
    let text = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = Some(text));
}

/// Runs `f` at the boundary: its error becomes the thread's last error
/// and `SHIPSHAPE_ERROR`, a panic `SHIPSHAPE_PANIC`; success clears the
/// last error and returns what `f` returned.
pub(crate) fn boundary(f: impl FnOnce() -> Result<c_int>) -> c_int {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(code)) => {
            LAST_ERROR.with(|e| *e.borrow_mut() = None);
            code
        }
        Ok(Err(Failure(message))) => {
            set_last_error(&message);
            SHIPSHAPE_ERROR
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            set_last_error(&format!("internal error (a bug in libshipshape): {what}"));
            SHIPSHAPE_PANIC
        }
    }
}

/// The shared runtime, created on first use.
pub(crate) fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> =
        OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("shipshape")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the runtime: {e}"))
        })
        .as_ref()
        .map_err(|e| Failure(e.clone()))
}

/// A required string argument: not null, valid UTF-8.
///
/// # Safety
/// `ptr` is null or points to a NUL-terminated string that stays valid
/// for the call.
pub(crate) unsafe fn arg<'a>(ptr: *const c_char, name: &str) -> Result<&'a str> {
    if ptr.is_null() {
        return Err(Failure(format!("{name} is a null pointer")));
    }
    // SAFETY: not null (checked above); the caller promises a
    // NUL-terminated string valid for the call.
    let text = unsafe { CStr::from_ptr(ptr) };
    text.to_str()
        .map_err(|e| Failure(format!("{name} is not valid UTF-8: {e}")))
}

/// An optional string argument: null is `None`, anything else as [`arg`].
///
/// # Safety
/// As [`arg`].
pub(crate) unsafe fn optional_arg<'a>(ptr: *const c_char, name: &str) -> Result<Option<&'a str>> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: the caller's promise, passed on.
    unsafe { arg(ptr, name) }.map(Some)
}

/// An optional JSON options argument: null means the defaults.
///
/// # Safety
/// As [`arg`].
pub(crate) unsafe fn options<T: serde::de::DeserializeOwned + Default>(
    ptr: *const c_char,
    name: &str,
) -> Result<T> {
    if ptr.is_null() {
        return Ok(T::default());
    }
    // SAFETY: the caller's promise, passed on.
    let text = unsafe { arg(ptr, name) }?;
    serde_json::from_str(text).map_err(|e| Failure(format!("{name}: {e}")))
}

/// Hands a string to C through `out`.
///
/// # Safety
/// `out` is null or points to writable memory for one pointer.
pub(crate) unsafe fn give(out: *mut *mut c_char, value: String) -> Result<()> {
    if out.is_null() {
        return Err(Failure("the output pointer is null".into()));
    }
    let c = CString::new(value).map_err(|_| Failure("the result contains a NUL byte".into()))?;
    // SAFETY: not null (checked above); the caller promises it is writable.
    unsafe { *out = c.into_raw() };
    Ok(())
}

/// Checks an output pointer before any work is done, so a null one fails
/// fast instead of after a whole backup.
pub(crate) fn need_out(out: *mut *mut c_char) -> Result<()> {
    if out.is_null() {
        return Err(Failure("the output pointer is null".into()));
    }
    Ok(())
}

/// The library's version, e.g. `"0.1.0"`: a static string, not to be
/// freed.
#[unsafe(no_mangle)]
pub extern "C" fn shipshape_version() -> *const c_char {
    static VERSION: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(v) => v,
            Err(_) => c"unknown",
        };
    VERSION.as_ptr()
}

/// Why the last call on this thread failed, or null after a success. The
/// string belongs to the library: valid until the next call on this
/// thread; copy it to keep it, and do not free it.
#[unsafe(no_mangle)]
pub extern "C" fn shipshape_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ref().map_or(std::ptr::null(), |s| s.as_ptr()))
}

/// Frees a string the library returned through a `char **`. Null is
/// fine.
///
/// # Safety
/// `s` is null or a string this library returned and not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shipshape_string_free(s: *mut c_char) {
    if !s.is_null() {
        // SAFETY: the caller promises `s` came from `CString::into_raw`
        // in this library and is freed once.
        drop(unsafe { CString::from_raw(s) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_code_and_a_message() {
        let code = boundary(|| panic!("boom"));
        assert_eq!(code, SHIPSHAPE_PANIC);
        // SAFETY: the library's own last-error string, valid until the next call.
        let message = unsafe { CStr::from_ptr(shipshape_last_error()) };
        assert!(message.to_string_lossy().contains("boom"));
        assert_eq!(boundary(|| Ok(SHIPSHAPE_OK)), SHIPSHAPE_OK);
        assert!(shipshape_last_error().is_null());
    }
}
