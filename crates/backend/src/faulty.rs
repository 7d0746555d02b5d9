//! `FaultyBackend`: a backend that fails on demand, for fault-injection tests of the stages
//! above it.
//!
//! Receives the calls of any [`Backend`] and passes them to the one it wraps, unless a fault is
//! armed in its shared [`BackendFaults`]: refuse a change in the middle of a batch (the changes
//! before it are committed, as the kernel's transactions do), fail every call as if the table's
//! socket broke, or panic (a bug in the backend thread). Faults are switched at run time, from
//! another thread, while a daemon runs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::errno::Errno;

use super::{
    ApplyError, Backend, BackendError, Change, Element, FirewallLayout, FirewallReport, Layout,
};
use nftjail_core::addr::BanTarget;

/// Faults armed for a [`FaultyBackend`]; shared, switchable while it runs.
#[derive(Debug, Default)]
pub struct BackendFaults {
    /// Refuse the next change of this target, once.
    refuse: Mutex<Option<BanTarget>>,
    /// Panic on the next call.
    panic: AtomicBool,
    /// Every call fails with an I/O error.
    broken: AtomicBool,
    /// Every call takes this many milliseconds more (a slow or busy kernel).
    delay_ms: AtomicU64,
}

impl BackendFaults {
    pub fn new() -> BackendFaults {
        BackendFaults::default()
    }

    /// Every call takes `delay` longer.
    pub fn slow_down(&self, delay: Duration) {
        self.delay_ms.store(
            u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
    }

    /// The next change of `target` is refused (the changes before it in its batch are
    /// committed, as after a kernel error in the middle of a batch).
    pub fn refuse(&self, target: BanTarget) {
        *self
            .refuse
            .lock()
            .expect("invariant: fault lock not poisoned") = Some(target);
    }

    /// The next call panics.
    pub fn panic_next(&self) {
        self.panic.store(true, Ordering::SeqCst);
    }

    /// Every call fails (or, with `false`, works again).
    pub fn break_socket(&self, broken: bool) {
        self.broken.store(broken, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), BackendError> {
        let delay = self.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
        if self.panic.swap(false, Ordering::SeqCst) {
            panic!("injected fault: the backend panics");
        }
        if self.broken.load(Ordering::SeqCst) {
            return Err(BackendError::Io(std::io::Error::other(
                "injected fault: the netlink socket is broken",
            )));
        }
        Ok(())
    }
}

/// A backend with faults on demand around another backend.
pub struct FaultyBackend {
    inner: Box<dyn Backend>,
    faults: Arc<BackendFaults>,
}

impl FaultyBackend {
    pub fn new(inner: Box<dyn Backend>, faults: Arc<BackendFaults>) -> FaultyBackend {
        FaultyBackend { inner, faults }
    }
}

impl Backend for FaultyBackend {
    fn apply_layout(&mut self, layout: &Layout) -> Result<(), BackendError> {
        self.faults.check()?;
        self.inner.apply_layout(layout)
    }

    fn apply(&mut self, changes: &[Change]) -> Result<(), ApplyError> {
        self.faults.check().map_err(|error| ApplyError {
            committed: 0,
            error,
        })?;
        let refused = {
            let mut armed = self
                .faults
                .refuse
                .lock()
                .expect("invariant: fault lock not poisoned");
            match *armed {
                Some(target) => changes
                    .iter()
                    .position(|c| *c.target() == target)
                    .inspect(|_| {
                        *armed = None;
                    }),
                None => None,
            }
        };
        let Some(committed) = refused else {
            return self.inner.apply(changes);
        };
        self.inner.apply(&changes[..committed])?;
        let refused = &changes[committed];
        Err(ApplyError {
            committed,
            error: BackendError::ElementRefused {
                jail: refused.jail().clone(),
                target: *refused.target(),
                errno: Errno::ENOSPC,
            },
        })
    }

    fn apply_firewall(
        &mut self,
        firewall: &FirewallLayout,
    ) -> Result<FirewallReport, BackendError> {
        self.faults.check()?;
        self.inner.apply_firewall(firewall)
    }

    fn list(&mut self) -> Result<Vec<Element>, BackendError> {
        self.faults.check()?;
        self.inner.list()
    }

    fn remove_table(&mut self) -> Result<(), BackendError> {
        self.faults.check()?;
        self.inner.remove_table()
    }
}
