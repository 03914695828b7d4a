//! The simulator's memory allocator ([`Small`]): blocks of up to 64 bytes come from slabs,
//! packed by size with no header of their own; larger ones from the system's allocator.
//!
//! A thousand simulated nodes each keep a picture of every member, keyed by name, in the
//! engine's maps and the core's: at the peak of a 1000-node run some ten million strings of
//! a few bytes (`n123`) live at once, and glibc's `malloc` gives each a chunk of 32 bytes
//! (measured with a counting allocator: 10 M live blocks of at most 8 bytes, 35 MB asked
//! for and 320 MB held). Here such a name takes 8 bytes. Nothing the simulator decides
//! depends on where a block lies, so its outputs are the same with either allocator.
//!
//! A freed block goes on a free list of its size class and is handed out again before the
//! slab grows; slabs are never given back (nor are most small chunks with glibc). The
//! simulator runs in one thread, so the lock around the lists is never contended; it is
//! there because an allocator must be safe to call from any thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::ptr::{self, null_mut};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

/// The size classes: 8, 16, ... up to `STEP * CLASSES` bytes.
const STEP: usize = 8;
const CLASSES: usize = 8;
/// The bytes asked of the system at a time for small blocks.
const SLAB: usize = 1 << 20;

/// Whether blocks are counted (see [`count`]): off unless asked for, so that a run pays
/// one predictable branch per block.
static COUNTING: AtomicBool = AtomicBool::new(false);
/// Live blocks and bytes by size, in powers of two (`i`: sizes up to `2^i`).
static LIVE: [[AtomicI64; 2]; 48] = [const { [const { AtomicI64::new(0) }; 2] }; 48];

/// Counts every block allocated or freed from now on, by size. Call it first in `main`:
/// a block allocated before and freed after counts as negative.
pub fn count() {
    COUNTING.store(true, Ordering::Relaxed);
}

/// Returns the live blocks and bytes by size class (sizes up to `2^i` in entry `i`), while
/// counting (see [`count`]).
pub fn live() -> Vec<(usize, i64, i64)> {
    (LIVE.iter().enumerate())
        .map(|(i, [b, n])| {
            (
                1usize << i,
                b.load(Ordering::Relaxed),
                n.load(Ordering::Relaxed),
            )
        })
        .filter(|&(_, b, _)| b != 0)
        .collect()
}

/// Adds `sign` blocks of `size` bytes to the live counts, if counting.
fn note(size: usize, sign: i64) {
    if COUNTING.load(Ordering::Relaxed) {
        let i = (usize::BITS - size.max(1).saturating_sub(1).leading_zeros()) as usize;
        let [b, n] = &LIVE[i.min(47)];
        b.fetch_add(sign, Ordering::Relaxed);
        n.fetch_add(sign * size as i64, Ordering::Relaxed);
    }
}

/// The free lists and the current slab.
struct Pools {
    /// The first free block of each class; a free block holds the address of the next.
    free: [*mut u8; CLASSES],
    /// The part of the current slab not handed out yet: from `next` to `end`.
    next: *mut u8,
    end: *mut u8,
}

impl Pools {
    /// Returns a block of class `c` (null when the system has no memory left).
    ///
    /// # Safety
    /// The free lists hold only blocks of their class, each at least 8 bytes, aligned to 8.
    unsafe fn take(&mut self, c: usize) -> *mut u8 {
        let head = self.free[c];
        if !head.is_null() {
            self.free[c] = head.cast::<*mut u8>().read();
            return head;
        }
        let size = (c + 1) * STEP;
        if (self.end as usize) - (self.next as usize) < size {
            // The rest of the slab (less than 64 bytes) is left unused.
            let slab = System.alloc(Layout::from_size_align_unchecked(SLAB, STEP));
            if slab.is_null() {
                return null_mut();
            }
            self.next = slab;
            self.end = slab.add(SLAB);
        }
        let block = self.next;
        self.next = block.add(size);
        block
    }

    /// Puts block `b` of class `c` back on its free list.
    ///
    /// # Safety
    /// `b` was handed out by [`Pools::take`] for class `c` and is no longer used.
    unsafe fn give(&mut self, c: usize, b: *mut u8) {
        b.cast::<*mut u8>().write(self.free[c]);
        self.free[c] = b;
    }
}

/// The allocator (see the module documentation).
pub struct Small {
    lock: AtomicBool,
    pools: UnsafeCell<Pools>,
}

// The pools are only reached under the lock.
unsafe impl Sync for Small {}

impl Small {
    /// Returns an allocator with no slab yet.
    pub const fn new() -> Small {
        Small {
            lock: AtomicBool::new(false),
            pools: UnsafeCell::new(Pools {
                free: [null_mut(); CLASSES],
                next: null_mut(),
                end: null_mut(),
            }),
        }
    }

    /// Returns the size class of blocks of `layout`, if they are small.
    fn class(layout: &Layout) -> Option<usize> {
        (layout.size() <= STEP * CLASSES && layout.align() <= STEP)
            .then(|| layout.size().max(1).div_ceil(STEP) - 1)
    }

    /// Runs `f` on the pools, under the lock.
    fn with<R>(&self, f: impl FnOnce(&mut Pools) -> R) -> R {
        while (self.lock)
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
        // SAFETY: the lock is held, so nothing else reaches the pools.
        let r = f(unsafe { &mut *self.pools.get() });
        self.lock.store(false, Ordering::Release);
        r
    }
}

impl Default for Small {
    fn default() -> Small {
        Small::new()
    }
}

unsafe impl GlobalAlloc for Small {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size(), 1);
        match Small::class(&layout) {
            Some(c) => self.with(|p| p.take(c)),
            None => System.alloc(layout),
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match Small::class(&layout) {
            Some(_) => {
                // Counted by `alloc`.
                let b = self.alloc(layout);
                if !b.is_null() {
                    ptr::write_bytes(b, 0, layout.size());
                }
                b
            }
            None => {
                note(layout.size(), 1);
                System.alloc_zeroed(layout)
            }
        }
    }

    unsafe fn dealloc(&self, b: *mut u8, layout: Layout) {
        note(layout.size(), -1);
        match Small::class(&layout) {
            Some(c) => self.with(|p| p.give(c, b)),
            None => System.dealloc(b, layout),
        }
    }

    unsafe fn realloc(&self, b: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = Layout::from_size_align_unchecked(new_size, layout.align());
        match (Small::class(&layout), Small::class(&new)) {
            (None, None) => {
                note(layout.size(), -1);
                note(new_size, 1);
                System.realloc(b, layout, new_size)
            }
            (Some(c), Some(d)) if c == d => {
                note(layout.size(), -1);
                note(new_size, 1);
                b
            }
            _ => {
                let n = self.alloc(new);
                if !n.is_null() {
                    ptr::copy_nonoverlapping(b, n, layout.size().min(new_size));
                    self.dealloc(b, layout);
                }
                n
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_blocks_are_packed_reused_and_kept_apart_from_large_ones() {
        let a = Small::new();
        let l8 = Layout::from_size_align(5, 1).unwrap();
        let l64 = Layout::from_size_align(64, 8).unwrap();
        let big = Layout::from_size_align(65, 8).unwrap();
        unsafe {
            let x = a.alloc(l8);
            let y = a.alloc(l8);
            assert_eq!(
                y as usize - x as usize,
                8,
                "no header between two small blocks"
            );
            x.write_bytes(0xAB, 5);
            y.write_bytes(0xCD, 5);
            a.dealloc(x, l8);
            assert_eq!(a.alloc(l8), x, "a freed block is handed out again");
            assert_eq!(y.read(), 0xCD);
            let z = a.alloc_zeroed(l64);
            assert!((0..64).all(|i| z.add(i).read() == 0));
            // Growing out of the small classes copies the bytes to a system block.
            y.write_bytes(7, 5);
            let g = a.realloc(y, l8, 200);
            assert!((0..5).all(|i| g.add(i).read() == 7));
            let g = a.realloc(g, Layout::from_size_align(200, 1).unwrap(), 3);
            assert!((0..3).all(|i| g.add(i).read() == 7));
            a.dealloc(g, Layout::from_size_align(3, 1).unwrap());
            let b = a.alloc(big);
            assert_eq!(b as usize % 8, 0);
            a.dealloc(b, big);
            a.dealloc(z, l64);
        }
    }
}
