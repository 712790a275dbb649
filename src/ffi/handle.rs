//! Handles given to C are not pointers to Rust objects: they are tokens
//! (type tag, slot, generation) looked up in a registry. A closed, freed,
//! forged or foreign handle is found missing and gives JOBQ_E_HANDLE, never
//! a dereference of freed memory. Each entry also records the process that
//! made it, so a handle inherited across fork() is refused in the child.

use std::ptr;
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::{Error, Result};

const INDEX_BITS: u32 = 32;
const GEN_BITS: u32 = 28;
const GEN_MASK: u64 = (1 << GEN_BITS) - 1;

struct Slot<T> {
    generation: u64,
    pid: u32,
    value: Option<Arc<T>>,
}

struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
}

pub(crate) struct Registry<T> {
    /// 1..=15, distinct per handle type, so a job handle is no queue handle.
    tag: u64,
    what: &'static str,
    slab: Mutex<Slab<T>>,
}

impl<T> Registry<T> {
    pub(crate) const fn new(tag: u64, what: &'static str) -> Self {
        Registry { tag, what, slab: Mutex::new(Slab { slots: Vec::new(), free: Vec::new() }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slab<T>> {
        self.slab.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Before fork(): holds the registry's lock until `fork_unlock`, so a
    /// child never inherits it locked by a thread that does not exist there.
    pub(crate) fn fork_lock(&'static self)
    where
        T: 'static,
    {
        let guard = self.lock();
        FORK_GUARDS.with(|g| g.borrow_mut().push(Box::new(guard)));
    }
}

thread_local! {
    // Registry locks held by the forking thread across fork().
    static FORK_GUARDS: std::cell::RefCell<Vec<Box<dyn std::any::Any>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Keeps another lock guard until `fork_unlock`.
pub(crate) fn hold_for_fork(guard: Box<dyn std::any::Any>) {
    FORK_GUARDS.with(|g| g.borrow_mut().push(guard));
}

/// After fork(), in parent and child: releases what `fork_lock` took.
pub(crate) fn fork_unlock() {
    FORK_GUARDS.with(|g| g.borrow_mut().clear());
}

impl<T> Registry<T> {
    /// Registers `value`; returns the handle C sees (never null).
    pub(crate) fn insert<H>(&self, value: Arc<T>) -> *mut H {
        let pid = std::process::id();
        let mut slab = self.lock();
        let index = match slab.free.pop() {
            Some(i) => i as usize,
            None => {
                slab.slots.push(Slot { generation: 0, pid, value: None });
                slab.slots.len() - 1
            }
        };
        let slot = &mut slab.slots[index];
        slot.generation = (slot.generation + 1) & GEN_MASK;
        slot.pid = pid;
        slot.value = Some(value);
        let token = (self.tag << (INDEX_BITS + GEN_BITS)) | (slot.generation << INDEX_BITS) | (index as u64 + 1);
        ptr::without_provenance_mut(token as usize)
    }

    fn decode<H>(&self, handle: *const H) -> Result<(usize, u64)> {
        let token = handle.addr() as u64;
        if handle.is_null() {
            return Err(Error::InvalidArg(format!("{} handle is NULL", self.what)));
        }
        let index = (token & 0xFFFF_FFFF) as usize;
        if token >> (INDEX_BITS + GEN_BITS) != self.tag || index == 0 {
            return Err(Error::Handle(format!("not a {} handle", self.what)));
        }
        Ok((index - 1, (token >> INDEX_BITS) & GEN_MASK))
    }

    fn check<'a>(&self, slab: &'a mut Slab<T>, index: usize, generation: u64) -> Result<&'a mut Slot<T>> {
        let pid = std::process::id();
        match slab.slots.get_mut(index) {
            Some(slot) if slot.generation == generation && slot.value.is_some() => {
                if slot.pid != pid {
                    Err(Error::Handle(format!(
                        "this {} handle belongs to process {}, not this one (fork?): after fork(), \
                         open a new handle in the child",
                        self.what, slot.pid
                    )))
                } else {
                    Ok(slot)
                }
            }
            _ => Err(Error::Handle(format!("{} handle is closed, freed, or was never valid", self.what))),
        }
    }

    pub(crate) fn get<H>(&self, handle: *const H) -> Result<Arc<T>> {
        let (index, generation) = self.decode(handle)?;
        let mut slab = self.lock();
        let slot = self.check(&mut slab, index, generation)?;
        slot.value.clone().ok_or_else(|| Error::Internal("empty slot".into()))
    }

    /// Unregisters the handle; later uses of it give JOBQ_E_HANDLE.
    pub(crate) fn remove<H>(&self, handle: *const H) -> Result<Arc<T>> {
        let (index, generation) = self.decode(handle)?;
        let mut slab = self.lock();
        let slot = self.check(&mut slab, index, generation)?;
        let value = slot.value.take().ok_or_else(|| Error::Internal("empty slot".into()))?;
        slab.free.push(index as u32);
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct H;

    #[test]
    fn stale_forged_and_foreign_handles_are_refused() {
        static R: Registry<u32> = Registry::new(3, "test");
        static OTHER: Registry<u32> = Registry::new(4, "other");
        let h: *mut H = R.insert(Arc::new(7));
        assert_eq!(*R.get(h).unwrap(), 7);
        assert!(matches!(OTHER.get(h), Err(Error::Handle(_))));
        assert_eq!(*R.remove(h).unwrap(), 7);
        assert!(matches!(R.get(h), Err(Error::Handle(_))));
        assert!(matches!(R.remove(h), Err(Error::Handle(_))));
        // The slot is reused with a new generation: the old handle stays dead.
        let h2: *mut H = R.insert(Arc::new(8));
        assert_ne!(h, h2);
        assert!(matches!(R.get(h), Err(Error::Handle(_))));
        assert!(matches!(R.get(ptr::without_provenance::<H>(0x1234)), Err(Error::Handle(_))));
        assert!(matches!(R.get(ptr::null::<H>()), Err(Error::InvalidArg(_))));
    }
}
