//! Locks for arenas and global lists: a three-state futex mutex (uncontended lock and unlock
//! are one compare-and-swap / one swap; waiters sleep in the kernel, never spin forever).

use core::sync::atomic::{AtomicU32, Ordering};

pub struct Mutex {
    state: AtomicU32, // 0 unlocked, 1 locked, 2 locked with waiters
}

impl Mutex {
    pub const fn new() -> Self {
        Mutex {
            state: AtomicU32::new(0),
        }
    }

    #[inline]
    pub fn lock(&self) {
        if self
            .state
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_slow();
        }
    }

    #[inline]
    pub fn try_lock(&self) -> bool {
        self.state
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    #[cold]
    fn lock_slow(&self) {
        // Spin briefly: arena critical sections are short.
        for _ in 0..100 {
            core::hint::spin_loop();
            if self.state.load(Ordering::Relaxed) == 0 && self.try_lock() {
                return;
            }
        }
        while self.state.swap(2, Ordering::Acquire) != 0 {
            crate::os::futex_wait(&self.state, 2);
        }
    }

    #[inline]
    pub fn unlock(&self) {
        if self.state.swap(0, Ordering::Release) == 2 {
            crate::os::futex_wake_one(&self.state);
        }
    }

    /// Whether some thread holds the lock (a snapshot).
    #[cfg(test)]
    pub fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) != 0
    }

    /// Re-initialises the lock in a forked child, where the thread that held it is gone.
    pub fn reset(&self) {
        self.state.store(0, Ordering::Relaxed);
    }
}

impl Default for Mutex {
    fn default() -> Self {
        Self::new()
    }
}
