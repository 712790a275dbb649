//! What every clone of a `Queue` and every `Job` delivered through it
//! share: the store, the settings, the clock, the wakeups, and whether the
//! handle is closed. Its own module so that `queue` and `job` both use it
//! without using each other.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, PoisonError};

use crate::clock::Clock;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::notify::Notifier;
use crate::store::Store;

/// Most queue names a handle keeps shared copies of.
const MAX_CACHED_NAMES: usize = 4096;

pub(crate) struct Context {
    /// The path or URL the handle was opened with.
    pub(crate) path: PathBuf,
    pub(crate) config: Config,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) store: Box<dyn Store>,
    pub(crate) notifier: Arc<Notifier>,
    closed: AtomicBool,
    pub(crate) active_workers: AtomicUsize,
    /// Watches (`Watch`) open on this handle.
    pub(crate) open_watches: AtomicUsize,
    /// Queue names this handle has used, shared so that a put or reserve
    /// needs no allocation for its name.
    names: Mutex<HashSet<Arc<str>>>,
}

impl Context {
    pub(crate) fn new(
        path: PathBuf,
        config: Config,
        clock: Arc<dyn Clock>,
        store: Box<dyn Store>,
        notifier: Arc<Notifier>,
    ) -> Context {
        Context {
            path,
            config,
            clock,
            store,
            notifier,
            closed: AtomicBool::new(false),
            active_workers: AtomicUsize::new(0),
            open_watches: AtomicUsize::new(0),
            names: Mutex::new(HashSet::new()),
        }
    }

    /// The shared copy of queue name `queue` (allocated on first use by this handle).
    pub(crate) fn name(&self, queue: &str) -> Arc<str> {
        let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(name) = names.get(queue) {
            return name.clone();
        }
        let name: Arc<str> = queue.into();
        // A program that makes up names endlessly gets fresh copies instead
        // of a cache that grows without bound.
        if names.len() < MAX_CACHED_NAMES {
            names.insert(name.clone());
        }
        name
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if self.closed.load(SeqCst) {
            Err(Error::Shutdown("the queue is closed".into()))
        } else {
            Ok(())
        }
    }

    /// Closes the handle: waiting reserves return `Shutdown`, the store
    /// finishes what it has and stops its threads. `Busy` while workers run.
    pub(crate) fn close(&self) -> Result<()> {
        if self.active_workers.load(SeqCst) > 0 {
            return Err(Error::Busy("workers are still running on this queue; stop them first".into()));
        }
        let watches = self.open_watches.load(SeqCst);
        if watches > 0 {
            return Err(Error::Busy(format!("{watches} watch(es) are still open on this queue; close them first")));
        }
        if self.closed.swap(true, SeqCst) {
            return Ok(());
        }
        self.notifier.bump();
        self.store.close();
        Ok(())
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        self.active_workers.store(0, SeqCst);
        let _ = self.close();
    }
}
