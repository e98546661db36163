//! QEMU `mps2-an386` board support: clocks, interrupt numbers, the vector table's
//! external-interrupt part, a WFI-idle embassy executor, fault handlers and stack use.

use core::sync::atomic::{AtomicBool, Ordering};

use cortex_m::interrupt::InterruptNumber;
use embassy_executor::{raw, Spawner};
use static_cell::StaticCell;

/// Core clock of the MPS2 FPGA images under QEMU (`SYSCLK_FRQ` in hw/arm/mps2.c), which
/// also clocks SysTick when `CLKSOURCE` = processor clock.
pub const SYSCLK_HZ: u32 = 25_000_000;

/// External interrupt numbers (QEMU hw/arm/mps2.c, AN385/AN386 wiring).
pub mod irq {
    /// SMSC LAN9118 Ethernet controller at 0x4020_0000.
    pub const ETHERNET: u16 = 13;
}

/// Number of external interrupts QEMU gives the AN386's NVIC (`num-irq`).
const NUM_IRQS: usize = 32;

/// An NVIC interrupt number (there is no PAC for this board).
#[derive(Clone, Copy, Debug)]
pub struct Irq(pub u16);

// SAFETY: `Irq` only carries numbers of external interrupts that exist on this board
// (< NUM_IRQS); callers use the constants in `irq`.
unsafe impl InterruptNumber for Irq {
    fn number(self) -> u16 {
        self.0
    }
}

/// Unmasks external interrupt `n` in the NVIC.
pub fn unmask(n: u16) {
    // SAFETY: unmasking may break critical sections based on masking this interrupt; none
    // exist here (critical sections use PRIMASK via critical-section-single-core).
    unsafe { cortex_m::peripheral::NVIC::unmask(Irq(n)) }
}

// ---- vector table: external interrupts -------------------------------------------------

#[derive(Clone, Copy)]
#[repr(C)]
#[doc(hidden)]
pub union Vector {
    handler: unsafe extern "C" fn(),
    reserved: usize,
}

extern "C" {
    /// cortex-m-rt's default handler (its `DefaultHandler_` loops forever unless overridden).
    fn DefaultHandler();
}

/// SMSC LAN9118 (IRQ 13).
extern "C" fn eth_irq() {
    crate::lan9118::on_interrupt();
}

/// External-interrupt part of the vector table (cortex-m-rt's `device` feature). 32 entries
/// instead of the generic 240: saves ~830 bytes of flash.
#[link_section = ".vector_table.interrupts"]
#[no_mangle]
#[used]
pub static __INTERRUPTS: [Vector; NUM_IRQS] = {
    let mut v = [Vector { handler: DefaultHandler }; NUM_IRQS];
    v[irq::ETHERNET as usize] = Vector { handler: eth_irq };
    v
};

// ---- executor ----------------------------------------------------------------------------

/// Set by the executor's pender (a task was woken); cleared by the idle loop.
static WOKEN: AtomicBool = AtomicBool::new(false);

#[export_name = "__pender"]
fn pender(_context: *mut ()) {
    WOKEN.store(true, Ordering::Release);
}

/// Runs the embassy executor forever: `init` spawns the first tasks.
///
/// The idle loop sleeps with WFI (QEMU halts the vCPU until an interrupt; WFE would spin).
/// Checking `WOKEN` with interrupts masked and then WFI is race-free: a pending interrupt
/// still ends WFI while PRIMASK is set, and runs when PRIMASK is cleared again.
pub fn run_executor(init: impl FnOnce(Spawner)) -> ! {
    static EXECUTOR: StaticCell<raw::Executor> = StaticCell::new();
    let executor: &'static raw::Executor = EXECUTOR.init(raw::Executor::new(core::ptr::null_mut()));
    init(executor.spawner());
    loop {
        #[cfg(feature = "tls")]
        let polled = crate::time_driver::cycles();
        // SAFETY: `poll` is only ever called from this loop, never re-entrantly (the pender
        // only sets a flag).
        unsafe { executor.poll() };
        #[cfg(feature = "tls")]
        LONGEST_POLL.store(
            LONGEST_POLL
                .load(Ordering::Relaxed)
                .max(crate::time_driver::cycles().saturating_sub(polled) as u32),
            Ordering::Relaxed,
        );
        cortex_m::interrupt::free(|_| {
            if !WOKEN.swap(false, Ordering::AcqRel) {
                #[cfg(feature = "tls")]
                let slept = crate::time_driver::cycles();
                cortex_m::asm::wfi();
                #[cfg(feature = "tls")]
                IDLE.store(
                    IDLE.load(Ordering::Relaxed)
                        .wrapping_add(crate::time_driver::cycles().saturating_sub(slept) as u32),
                    Ordering::Relaxed,
                );
            }
        });
    }
}

/// Core clock cycles spent asleep in WFI (feature `tls`: the handshake's busy time is the time
/// it took less this). Wraps after 171 s of sleep at 25 MHz: take differences over shorter spans.
#[cfg(feature = "tls")]
static IDLE: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// The longest single `poll` of the executor so far, in core clock cycles (feature `tls`): the
/// longest computation that ran without a break (SCRAM's PBKDF2 runs in one).
#[cfg(feature = "tls")]
static LONGEST_POLL: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// See `LONGEST_POLL`.
#[cfg(feature = "tls")]
pub fn longest_poll_cycles() -> u32 {
    LONGEST_POLL.load(Ordering::Relaxed)
}

/// Cycles spent asleep so far (see `IDLE`).
#[cfg(feature = "tls")]
pub fn idle_cycles() -> u32 {
    IDLE.load(Ordering::Relaxed)
}

// ---- stack use ---------------------------------------------------------------------------

/// Bytes of stack used so far (high-water mark), from cortex-m-rt's `paint-stack` pattern.
pub fn stack_used() -> u32 {
    extern "C" {
        static _stack_start: u32;
        static _stack_end: u32;
    }
    let start = core::ptr::addr_of!(_stack_start) as usize; // top (highest address)
    let end = core::ptr::addr_of!(_stack_end) as usize; // bottom (end of .bss)
    let mut p = end;
    while p < start {
        // SAFETY: [end, start) is this program's stack region, word-aligned per link.x.
        if unsafe { core::ptr::read_volatile(p as *const u32) } != cortex_m_rt::STACK_PAINT_VALUE {
            break;
        }
        p += 4;
    }
    (start - p) as u32
}

/// Static RAM in use: .data + .bss (from the linker symbols).
pub fn static_ram() -> u32 {
    extern "C" {
        static __sdata: u32;
        static __ebss: u32;
    }
    (core::ptr::addr_of!(__ebss) as usize - core::ptr::addr_of!(__sdata) as usize) as u32
}

// ---- faults --------------------------------------------------------------------------------

#[cortex_m_rt::exception]
unsafe fn HardFault(_frame: &cortex_m_rt::ExceptionFrame) -> ! {
    crate::console::print("HardFault\n");
    crate::console::exit(101)
}

#[cortex_m_rt::exception]
unsafe fn DefaultHandler(irqn: i16) {
    crate::console::print("unexpected exception/interrupt ");
    crate::console::print_u32(irqn as u32);
    crate::console::print("\n");
    crate::console::exit(102)
}

/// Prints `panic` and exits with 101. The file and line of the panic are printed only with the
/// `panic-location` feature: reading `info.location()` keeps every panic site's `Location`,
/// its source path and the `core::fmt` code behind the messages alive — 14 KiB of flash, a
/// fifth of the budget. Rebuild with the feature to find a panic.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    crate::console::print("panic");
    #[cfg(feature = "panic-location")]
    if let Some(loc) = info.location() {
        crate::console::print(" at ");
        crate::console::print(loc.file());
        crate::console::print(":");
        crate::console::print_u32(loc.line());
    }
    #[cfg(not(feature = "panic-location"))]
    let _ = info;
    crate::console::print("\n");
    crate::console::exit(101)
}
