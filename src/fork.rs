//! fork() safety. SQLite keeps per-process lock bookkeeping in memory; a
//! child forked while one of our threads was inside an SQLite call (holding
//! a lock, or SQLite's own mutexes) inherits that state with nobody left to
//! release it, and its own connections then wait forever ("database is
//! locked"). So every use of SQLite in jobq holds `quiet()` (shared), and
//! the C layer's pthread_atfork handlers take it exclusively around fork():
//! the fork waits until no jobq thread is inside SQLite, and none enters
//! until it is done. The child then opens its own handles on a clean slate.
//!
//! Guards are taken only around leaf operations, never nested (a nested
//! shared lock could deadlock behind a waiting fork).

use std::cell::RefCell;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

static ACTIVITY: RwLock<()> = RwLock::new(());

thread_local! {
    // The forking thread holds the exclusive guard from prepare() to
    // release(); in the child, that same thread goes on.
    static HELD: RefCell<Option<RwLockWriteGuard<'static, ()>>> = const { RefCell::new(None) };
}

/// Held while a jobq thread uses SQLite.
pub(crate) fn quiet() -> RwLockReadGuard<'static, ()> {
    ACTIVITY.read().unwrap_or_else(PoisonError::into_inner)
}

/// Before fork(): wait until no jobq thread is inside SQLite, and keep them out.
pub(crate) fn prepare() {
    let guard = ACTIVITY.write().unwrap_or_else(PoisonError::into_inner);
    HELD.with(|h| *h.borrow_mut() = Some(guard));
}

/// After fork(), in the parent and in the child: let SQLite users in again.
pub(crate) fn release() {
    HELD.with(|h| drop(h.borrow_mut().take()));
}
