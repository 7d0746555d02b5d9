//! Start-up work: what the daemon does to the kernel between exec and serving, and that it does
//! it once. The daemon runs in-process on a backend that counts its calls.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nftjail_backend::{
    ApplyError, Backend, BackendError, Change, Element, FirewallLayout, FirewallReport, Layout,
    MemoryBackend,
};

/// A memory backend that counts how often the kernel's elements are listed.
struct CountingBackend {
    inner: MemoryBackend,
    lists: Arc<AtomicUsize>,
}

impl Backend for CountingBackend {
    fn apply_layout(&mut self, layout: &Layout) -> Result<(), BackendError> {
        self.inner.apply_layout(layout)
    }
    fn apply(&mut self, changes: &[Change]) -> Result<(), ApplyError> {
        self.inner.apply(changes)
    }
    fn apply_firewall(
        &mut self,
        firewall: &FirewallLayout,
    ) -> Result<FirewallReport, BackendError> {
        self.inner.apply_firewall(firewall)
    }
    fn list(&mut self) -> Result<Vec<Element>, BackendError> {
        self.lists.fetch_add(1, Ordering::SeqCst);
        self.inner.list()
    }
    fn remove_table(&mut self) -> Result<(), BackendError> {
        self.inner.remove_table()
    }
}

/// Regression: the periodic kernel check was due at the first tick after start-up, so the
/// kernel was listed twice in the first second (with 100,000 bans, 1.7 s of kernel time
/// competing with the restore). The start-up reconcile is the first check.
#[test]
fn the_kernel_is_listed_once_at_start_up_not_again_at_the_first_tick() {
    let dir = tempfile::tempdir().unwrap();
    let lists = Arc::new(AtomicUsize::new(0));
    let backend = CountingBackend {
        inner: MemoryBackend::new("nftjail"),
        lists: lists.clone(),
    };
    let d = crate::faults::start(dir.path(), Box::new(backend), Arc::default());
    assert_eq!(
        lists.load(Ordering::SeqCst),
        1,
        "the start-up reconcile lists the kernel"
    );
    // The core's upkeep runs every second: three ticks pass.
    std::thread::sleep(Duration::from_millis(3200));
    assert_eq!(
        lists.load(Ordering::SeqCst),
        1,
        "no second listing until the periodic check is due"
    );
    d.shutdown.cancel();
    d.done
        .recv_timeout(Duration::from_secs(10))
        .unwrap()
        .unwrap();
}
