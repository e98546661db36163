//! `embassy-time` driver on SysTick: a 1 kHz tick (`tick-hz-1_000`) counted in a 64-bit
//! software counter, with embassy's integrated timer queue (one queue item lives in each
//! task's header, so any number of tasks can sleep; no fixed-size queue).
//!
//! SysTick is clocked by the core clock (25 MHz under QEMU's mps2 machines); the reload
//! value is `SYSCLK_HZ / TICK_HZ - 1`. Each tick compares the counter with the earliest
//! deadline and, when it is due, wakes the expired tasks.
//!
//! Call [`init`] before anything reads the clock for real; before that `now()` is 0.

use core::cell::RefCell;
use core::task::Waker;

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use critical_section::Mutex;
use embassy_time_queue_utils::Queue;

use crate::board::SYSCLK_HZ;

struct State {
    /// Ticks since `init`.
    ticks: u64,
    /// Earliest deadline in the queue (`u64::MAX`: none).
    alarm: u64,
    queue: Queue,
}

struct SysTickDriver {
    state: Mutex<RefCell<State>>,
}

embassy_time_driver::time_driver_impl!(static DRIVER: SysTickDriver = SysTickDriver {
    state: Mutex::new(RefCell::new(State { ticks: 0, alarm: u64::MAX, queue: Queue::new() })),
});

const _: () = assert!(embassy_time_driver::TICK_HZ == 1_000, "time_driver expects tick-hz-1_000");
const RELOAD: u32 = SYSCLK_HZ / embassy_time_driver::TICK_HZ as u32 - 1;
const _: () = assert!(RELOAD < (1 << 24), "SysTick reload is 24 bits");

impl embassy_time_driver::Driver for SysTickDriver {
    fn now(&self) -> u64 {
        critical_section::with(|cs| self.state.borrow_ref(cs).ticks)
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        critical_section::with(|cs| {
            let mut s = self.state.borrow_ref_mut(cs);
            let s = &mut *s;
            if s.queue.schedule_wake(at, waker) {
                // Wakes at once if `at` has passed; otherwise returns the earliest deadline.
                s.alarm = s.queue.next_expiration(s.ticks);
            }
        });
    }
}

/// Starts the 1 kHz SysTick. Takes `SYST` by value: the time driver owns SysTick.
pub fn init(mut syst: SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(RELOAD);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

#[cortex_m_rt::exception]
fn SysTick() {
    critical_section::with(|cs| {
        let mut s = DRIVER.state.borrow_ref_mut(cs);
        let s = &mut *s;
        s.ticks += 1;
        if s.ticks >= s.alarm {
            // Wakers only pend the executor (set a flag); they do not re-enter the driver.
            s.alarm = s.queue.next_expiration(s.ticks);
        }
    });
}

/// Core clock cycles (25 MHz) since [`init`], from the tick count and SysTick's current value:
/// for measurements finer than the 1 ms tick (feature `tls`). Under QEMU the clock is its
/// virtual clock: with `-icount shift=0` one instruction takes 1 ns, so one cycle is 40
/// instructions; without `-icount` it follows the host's time.
#[cfg(feature = "tls")]
pub fn cycles() -> u64 {
    critical_section::with(|cs| {
        let ticks = DRIVER.state.borrow_ref(cs).ticks;
        let val = SYST::get_current();
        // A wrap not yet counted (the SysTick exception is pending): one tick more, and the
        // current value read again, after the wrap. Still 0 there: the period has just ended
        // and the next not begun (it begins at RELOAD).
        let (ticks, val) = if cortex_m::peripheral::SCB::is_pendst_pending() {
            let v = SYST::get_current();
            (ticks + 1, if v == 0 { RELOAD } else { v })
        } else {
            (ticks, val)
        };
        ticks * u64::from(RELOAD + 1) + u64::from(RELOAD - val.min(RELOAD))
    })
}
