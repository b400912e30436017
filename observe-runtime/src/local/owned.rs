//! A value one thread owns and uses without a locked instruction, which other threads still
//! reach: [`Owned`].
//!
//! The owner marks itself busy, then checks that no other thread wants the value; another thread
//! marks the value wanted, then checks that the owner is not busy. Each side writes, then reads
//! what the other wrote. For that to exclude both using the value at once, each side needs a full
//! fence between its write and its read. The owner, which uses the value all the time, pays only
//! a compiler fence; the other side, which comes rarely (a flush, the exporter's timer, the exit
//! hook), pays for both with a heavy barrier: Linux's `membarrier` runs a full fence on every
//! thread of the process that is running, and a thread that is not running has passed one when
//! it was switched out. Where there is no such barrier (another system, or a sandbox that forbids
//! the call), the owner takes a spin lock like everyone else.

use std::cell::UnsafeCell;
use std::sync::atomic::{compiler_fence, AtomicBool, Ordering};
use std::sync::LazyLock;

use spin::mutex::{SpinMutex, SpinMutexGuard};
use spin::relax::Yield;

/// A value used by its owning thread through [`Owned::owner`] and by any thread through
/// [`collect`].
pub(crate) struct Owned<T> {
    value: UnsafeCell<T>,
    /// The owner may use its fast path: the heavy half of the barrier is there (read once, when
    /// the value is made, and never changed).
    fast: bool,
    /// The owner is using the value on its fast path.
    busy: AtomicBool,
    /// Another thread holds the gate and wants the value: the owner takes the gate too.
    wanted: AtomicBool,
    /// The owner has put something in since the value was last collected ([`Owner::filled`]):
    /// a collection passes over the values not filled, without a barrier for them.
    filled: AtomicBool,
    /// Held by the other threads while they use the value, and by the owner on its slow path.
    gate: SpinMutex<(), Yield>,
}

impl<T: Default> Default for Owned<T> {
    fn default() -> Self {
        Self::new(T::default(), true)
    }
}

impl<T> Owned<T> {
    /// `fast`: whether the owner may use its fast path; only where the heavy barrier is there.
    fn new(value: T, fast: bool) -> Self {
        Self {
            value: UnsafeCell::new(value),
            fast: fast && *HEAVY_BARRIER,
            busy: AtomicBool::new(false),
            wanted: AtomicBool::new(false),
            filled: AtomicBool::new(false),
            gate: SpinMutex::new(()),
        }
    }
}

// SAFETY: the value is only reached through `owner` and `collect`, and never by two of them at
// once: `collect` holds the gate, and either the owner sees `wanted` and waits for the gate, or
// `collect` sees `busy` and waits until the owner is done (see the module's text). The value
// moves between threads with it, hence `T: Send`.
#[allow(unsafe_code)]
unsafe impl<T: Send> Sync for Owned<T> {}

/// The owner's use of the value, until this drops: on the fast path (`busy` set, and cleared
/// when this drops, also by a panic), or through the gate.
pub(crate) struct Owner<'a, T> {
    cell: &'a Owned<T>,
    /// The gate, held until this drops; `None` on the fast path.
    gate: Option<SpinMutexGuard<'a, (), Yield>>,
}

impl<T> Owned<T> {
    /// The value, for its owner.
    ///
    /// # Safety
    ///
    /// Called on the thread that owns the value (it lives in that thread's thread-local), and
    /// not while another [`Owner`] of it lives (two would both reach the value).
    #[inline(always)]
    #[allow(unsafe_code)]
    pub(crate) unsafe fn owner(&self) -> Owner<'_, T> {
        if self.fast {
            self.busy.store(true, Ordering::Relaxed);
            // The light half of the barrier: the store above is not moved after the load below
            // by the compiler; the processor is kept from it by `collect`'s heavy half.
            compiler_fence(Ordering::SeqCst);
            if !self.wanted.load(Ordering::Acquire) {
                return Owner {
                    cell: self,
                    gate: None,
                };
            }
            self.busy.store(false, Ordering::Release);
        }
        Owner {
            cell: self,
            gate: Some(self.gate.lock()),
        }
    }
}

impl<T> Owner<'_, T> {
    /// Notes that the value now holds something to collect. A collection that began before
    /// this may pass over it; one that begins after anything this thread did later sees it.
    #[inline]
    pub(crate) fn filled(&self) {
        self.cell.filled.store(true, Ordering::Relaxed);
    }
}

impl<T> std::ops::Deref for Owner<'_, T> {
    type Target = T;

    #[inline(always)]
    fn deref(&self) -> &T {
        #[allow(unsafe_code)]
        // SAFETY: no other thread uses the value while this lives (see `Sync`), and no other
        // `Owner` lives (the promise made to `owner`).
        unsafe {
            &*self.cell.value.get()
        }
    }
}

impl<T> std::ops::DerefMut for Owner<'_, T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut T {
        #[allow(unsafe_code)]
        // SAFETY: as for `deref`, and `&mut self` keeps this the only reference made here.
        unsafe {
            &mut *self.cell.value.get()
        }
    }
}

impl<T> Drop for Owner<'_, T> {
    #[inline(always)]
    fn drop(&mut self) {
        if self.gate.is_none() {
            self.cell.busy.store(false, Ordering::Release);
        }
    }
}

/// Runs `f` on the value of each of `cells` that its owner [filled](Owner::filled) since the
/// last collection, from any thread (not from inside an [`Owner`]'s life), with one heavy
/// barrier for all of them. Their gates are taken in the order given: callers give them in one
/// order (the registry's).
pub(crate) fn collect<T>(cells: &[&Owned<T>], mut f: impl FnMut(&mut T)) {
    let cells: Vec<&Owned<T>> = cells
        .iter()
        .copied()
        .filter(|cell| cell.filled.load(Ordering::Relaxed))
        .collect();
    let gates: Vec<SpinMutexGuard<'_, (), Yield>> =
        cells.iter().map(|cell| cell.gate.lock()).collect();
    if cells.iter().any(|cell| cell.fast) {
        for cell in cells.iter().filter(|cell| cell.fast) {
            cell.wanted.store(true, Ordering::Relaxed);
        }
        membarrier::run();
    }
    for cell in cells {
        if cell.fast {
            // The owner may be inside its fast path, begun before it could see `wanted`.
            while cell.busy.load(Ordering::Acquire) {
                std::thread::yield_now();
            }
        }
        #[allow(unsafe_code)]
        // SAFETY: the gate is held, and the owner is not on its fast path: it either saw
        // `wanted` and waits for the gate, or has left (`busy` is clear), or has no fast path.
        let value = unsafe { &mut *cell.value.get() };
        f(value);
        cell.filled.store(false, Ordering::Relaxed);
        if cell.fast {
            cell.wanted.store(false, Ordering::Release);
        }
    }
    drop(gates);
}

/// Whether the heavy half of the barrier is there (registered once, before any value that
/// relies on it is made).
static HEAVY_BARRIER: LazyLock<bool> = LazyLock::new(membarrier::register);

/// Registers for the heavy barrier now. Registering is quickest before the process has more
/// threads than one, so the client's `init` calls this; otherwise the first value made does.
pub(crate) fn prepare() {
    LazyLock::force(&HEAVY_BARRIER);
}

#[cfg(target_os = "linux")]
mod membarrier {
    //! `membarrier(2)`, private expedited: a full fence on every running thread of this process.

    const QUERY: libc::c_long = 0;
    const PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
    const REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

    fn call(command: libc::c_long) -> libc::c_long {
        #[allow(unsafe_code)]
        // SAFETY: `membarrier` takes two integers and touches no memory of ours.
        unsafe {
            libc::syscall(libc::SYS_membarrier, command, 0 as libc::c_long)
        }
    }

    /// Registers the process for the barrier; `false` when the system does not offer it.
    pub(super) fn register() -> bool {
        let offered = call(QUERY);
        offered >= 0 && offered & PRIVATE_EXPEDITED != 0 && call(REGISTER_PRIVATE_EXPEDITED) == 0
    }

    /// Runs the barrier. Registered, it cannot fail; a child forked from the process registers
    /// again, in case its kernel did not carry the registration over.
    pub(super) fn run() {
        if call(PRIVATE_EXPEDITED) != 0 {
            let _ = call(REGISTER_PRIVATE_EXPEDITED);
            let _ = call(PRIVATE_EXPEDITED);
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod membarrier {
    pub(super) fn register() -> bool {
        false
    }

    pub(super) fn run() {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// The owner adds one at a time, in two steps with a pause between them that a collector
    /// coming in between would see (an odd count), and pauses between its rounds; two collectors take what is there, every
    /// 20 µs or so, until the owner is done, with a pause of their own that an owner coming in
    /// would change. Nothing is lost, seen halfway or changed while taken.
    fn owner_and_collectors(fast: bool) {
        let cell = Arc::new(Owned::new(0u64, fast));
        let done = AtomicBool::new(false);
        let taken = std::sync::Mutex::new(0u64);
        let take = |count: &mut u64| {
            assert_eq!(*count % 2, 0, "seen halfway");
            let seen = *count;
            for _ in 0..1_000 {
                std::hint::black_box(&mut *count);
            }
            assert_eq!(*count, seen, "changed while taken");
            *taken.lock().unwrap() += std::mem::take(count);
        };
        let rounds = 5_000u64;
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    while !done.load(Ordering::Acquire) {
                        collect(&[&*cell], take);
                        std::thread::sleep(std::time::Duration::from_micros(20));
                    }
                });
            }
            scope.spawn(|| {
                for _ in 0..rounds {
                    #[allow(unsafe_code)]
                    // SAFETY: this thread is the only one that calls `owner`, one at a time.
                    let mut count = unsafe { cell.owner() };
                    *count += 1;
                    for _ in 0..1_000 {
                        std::hint::black_box(&mut *count);
                    }
                    *count += 1;
                    count.filled();
                    drop(count);
                    // A pause outside, for the collectors to come in.
                    for _ in 0..1_000 {
                        std::hint::black_box(&cell);
                    }
                }
                done.store(true, Ordering::Release);
            });
        });
        collect(&[&*cell], take);
        assert_eq!(*taken.lock().unwrap(), 2 * rounds);
    }

    #[test]
    fn a_collection_passes_over_what_its_owner_did_not_fill() {
        let cell = Owned::new(0u64, true);
        let mut taken = Vec::new();
        collect(&[&cell], |value| taken.push(std::mem::take(value)));
        assert_eq!(taken, [] as [u64; 0]);
        {
            #[allow(unsafe_code)]
            // SAFETY: this thread is the only one that calls `owner`, one at a time.
            let mut value = unsafe { cell.owner() };
            *value = 5;
            value.filled();
        }
        collect(&[&cell], |value| taken.push(std::mem::take(value)));
        collect(&[&cell], |value| taken.push(std::mem::take(value)));
        assert_eq!(taken, [5]);
    }

    #[test]
    fn the_owner_and_collectors_never_use_the_value_at_once() {
        owner_and_collectors(true);
    }

    #[test]
    fn without_the_heavy_barrier_the_owner_takes_the_lock() {
        owner_and_collectors(false);
    }
}
