//! `embassy-net-driver` driver for the SMSC LAN9118 Ethernet controller (32-bit mode), as
//! wired on the ARM MPS2 boards and emulated by QEMU (`hw/net/lan9118.c`).
//!
//! Data path: programmed I/O through the chip's FIFO ports; one frame is copied into a
//! driver-owned buffer on receive, and out of one on transmit ([`PacketBuffers`], ~3 KiB).
//! Events: RSFL (RX status FIFO level > 0) and the PHY's link interrupts raise IRQ 13; the
//! handler ([`on_interrupt`]) acknowledges them and wakes the task driving the stack.
//!
//! QEMU specifics (all handled here, all harmless on the real chip):
//! - The IRQ line is active-low unless `IRQ_CFG` has both `IRQ_POL` and `IRQ_TYPE` set: with
//!   the reset value the NVIC sees the line permanently asserted. We set EN|POL|TYPE.
//! - INT_STS bits are latched: RSFL stays set after the FIFO is drained until written back
//!   as 1, so the handler acknowledges (write-1-to-clear) before waking.
//! - No FIFO-level interrupts other than RSFL; TDFA never fires, but QEMU transmits each
//!   frame synchronously when its last word is written, so the TX FIFO is always free.
//! - Accessing an unimplemented register (e.g. 0x60, 0x94, RX status *peek*) aborts QEMU
//!   (`hw_error`); RX_DP_CTRL fast-forward is buggy. Neither is used.
//! - Frames arrive with 4 CRC bytes appended (status length includes them).

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::Context;

use embassy_net_driver::{Capabilities, HardwareAddress, LinkState};
use embassy_sync::waitqueue::AtomicWaker;

/// Base address of the LAN9118 on MPS2 (AN385/AN386/AN500).
pub const BASE: usize = 0x4020_0000;
/// Largest Ethernet frame handled, without CRC (1500 + 14).
pub const MTU: usize = 1514;
/// RX buffer: a maximal frame plus its CRC, in whole words.
const RX_WORDS: usize = (MTU + 4).div_ceil(4);
const TX_WORDS: usize = MTU.div_ceil(4);

// --- register offsets -------------------------------------------------------------------
const RX_DATA_FIFO: usize = 0x00;
const TX_DATA_FIFO: usize = 0x20;
const RX_STATUS_FIFO: usize = 0x40;
const ID_REV: usize = 0x50;
const IRQ_CFG: usize = 0x54;
const INT_STS: usize = 0x58;
const INT_EN: usize = 0x5c;
const BYTE_TEST: usize = 0x64;
const FIFO_INT: usize = 0x68;
const RX_CFG: usize = 0x6c;
const TX_CFG: usize = 0x70;
const HW_CFG: usize = 0x74;
const RX_FIFO_INF: usize = 0x7c;
const TX_FIFO_INF: usize = 0x80;
const PMT_CTRL: usize = 0x84;
const FREE_RUN: usize = 0x9c;
const MAC_CSR_CMD: usize = 0xa4;
const MAC_CSR_DATA: usize = 0xa8;

// IRQ_CFG
const IRQ_EN: u32 = 1 << 8;
const IRQ_POL: u32 = 1 << 4; // active high
const IRQ_TYPE: u32 = 1 << 0; // push-pull
                              // INT_STS / INT_EN
const INT_RSFL: u32 = 1 << 3;
const INT_TDFA: u32 = 1 << 9;
const INT_PHY: u32 = 1 << 18;
// HW_CFG
const HW_CFG_SRST: u32 = 1 << 0;
// PMT_CTRL
const PMT_READY: u32 = 1 << 0;
// TX_CFG
const TX_CFG_TX_ON: u32 = 1 << 1;
/// TX status FIFO may overrun: we never read TX statuses (QEMU always "succeeds").
const TX_CFG_TXSAO: u32 = 1 << 2;
// TX command A/B
const TXA_FIRST_SEG: u32 = 1 << 13;
const TXA_LAST_SEG: u32 = 1 << 12;
// RX status word
const RXS_ERROR: u32 = 1 << 15;
const RXS_FILTER_FAIL: u32 = 1 << 30;
const BYTE_TEST_VALUE: u32 = 0x8765_4321;

// MAC CSR (indirect) registers
const MAC_CSR_BUSY: u32 = 1 << 31;
const MAC_CSR_READ: u32 = 1 << 30;
const MAC_CR: u32 = 1;
const MAC_ADDRH: u32 = 2;
const MAC_ADDRL: u32 = 3;
const MAC_MII_ACC: u32 = 6;
const MAC_MII_DATA: u32 = 7;
const MAC_CR_RXEN: u32 = 1 << 2;
const MAC_CR_TXEN: u32 = 1 << 3;
const MAC_CR_FDPX: u32 = 1 << 20;
// MII
const MII_BUSY: u32 = 1 << 0;
const MII_WRITE: u32 = 1 << 1;
const PHY_ADDR: u32 = 1; // internal PHY
const PHY_BSR: u32 = 1;
const PHY_BSR_LINK: u32 = 1 << 2;
const PHY_INT_SRC: u32 = 29;
const PHY_INT_MASK: u32 = 30;
/// ENERGYON | AUTONEG_COMPLETE | LINK_DOWN.
const PHY_INT_LINK_EVENTS: u32 = 0x80 | 0x40 | 0x10;

/// Wakes the task that runs the embassy-net stack (all three driver entry points are
/// called from that one task, so one waker slot suffices).
static WAKER: AtomicWaker = AtomicWaker::new();
/// Set by the IRQ handler when the PHY raised a link event; consumed by `link_state`.
static PHY_EVENT: AtomicBool = AtomicBool::new(true);

#[inline(always)]
fn rd(off: usize) -> u32 {
    // SAFETY: BASE..BASE+0x100 is the LAN9118's register window on this board; `off` is one
    // of the implemented, word-aligned register offsets above. Reads of FIFO ports pop.
    unsafe { read_volatile((BASE + off) as *const u32) }
}

#[inline(always)]
fn wr(off: usize, v: u32) {
    // SAFETY: as in `rd`; writes to implemented registers only.
    unsafe { write_volatile((BASE + off) as *mut u32, v) }
}

/// Read-modify-write of INT_EN with interrupts masked (the IRQ handler also writes it).
fn int_en_modify(f: impl FnOnce(u32) -> u32) {
    cortex_m::interrupt::free(|_| wr(INT_EN, f(rd(INT_EN))));
}

/// Interrupt handler body for the LAN9118's IRQ (13). Acknowledges latched events, masks
/// level-type ones (PHY, TDFA) until the driver has serviced them, and wakes the driver.
/// Uses only INT_STS/INT_EN, never the MAC CSR window the driver uses in thread mode.
pub fn on_interrupt() {
    let en = rd(INT_EN);
    let pending = rd(INT_STS) & en;
    let masked = pending & (INT_PHY | INT_TDFA);
    if masked != 0 {
        wr(INT_EN, en & !masked);
    }
    if pending & INT_PHY != 0 {
        PHY_EVENT.store(true, Ordering::Release);
    }
    wr(INT_STS, pending);
    WAKER.wake();
}

/// Frame buffers for [`Lan9118`] (one RX, one TX; they are borrowed at the same time when
/// the stack answers a received frame). Place them in a `static`, e.g.
/// `static BUFS: ConstStaticCell<PacketBuffers> = ConstStaticCell::new(PacketBuffers::new());`.
#[derive(Debug)]
pub struct PacketBuffers {
    rx: [u32; RX_WORDS],
    tx: [u32; TX_WORDS],
}

impl PacketBuffers {
    pub const fn new() -> Self {
        Self { rx: [0; RX_WORDS], tx: [0; TX_WORDS] }
    }
}

impl Default for PacketBuffers {
    fn default() -> Self {
        Self::new()
    }
}

/// Why [`Lan9118::new`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitError {
    /// BYTE_TEST did not read 0x87654321: no LAN9118 at [`BASE`] (or wrong bus width).
    NotFound,
    /// Soft reset or the READY bit did not complete.
    ResetTimeout,
}

/// The LAN9118 driver. Only one may exist (it owns the chip and the IRQ's waker).
#[derive(Debug)]
pub struct Lan9118<'d> {
    mac: [u8; 6],
    link_up: bool,
    bufs: &'d mut PacketBuffers,
}

impl<'d> Lan9118<'d> {
    /// Resets and configures the chip: MAC address `mac`, RX and TX enabled, interrupts on
    /// RX status FIFO level and PHY link events, IRQ line push-pull active-high; unmasks
    /// IRQ 13 in the NVIC. Call once.
    pub fn new(mac: [u8; 6], bufs: &'d mut PacketBuffers) -> Result<Self, InitError> {
        if rd(BYTE_TEST) != BYTE_TEST_VALUE {
            return Err(InitError::NotFound);
        }
        wr(HW_CFG, HW_CFG_SRST);
        if !spin_until(|| rd(HW_CFG) & HW_CFG_SRST == 0 && rd(PMT_CTRL) & PMT_READY != 0) {
            return Err(InitError::ResetTimeout);
        }
        let _ = rd(ID_REV);

        mac_write(MAC_ADDRL, u32::from_le_bytes([mac[0], mac[1], mac[2], mac[3]]));
        mac_write(MAC_ADDRH, u32::from_le_bytes([mac[4], mac[5], 0, 0]));
        // Clears the reset value's PRMS (promiscuous): perfect unicast filter + broadcast.
        mac_write(MAC_CR, MAC_CR_TXEN | MAC_CR_RXEN | MAC_CR_FDPX);

        wr(RX_CFG, 0); // no offset, 4-byte end alignment
        wr(TX_CFG, TX_CFG_TX_ON | TX_CFG_TXSAO);
        // RX status level 0: RSFL as soon as one frame is in. TX data available level (64-byte
        // units): room for one maximal frame plus its command words, for TDFA.
        const TDAL: u32 = (MTU as u32 + 8).div_ceil(64);
        wr(FIFO_INT, TDAL << 24);

        phy_write(PHY_INT_MASK, PHY_INT_LINK_EVENTS);
        let _ = phy_read(PHY_INT_SRC); // clear events latched by the reset
        let link_up = phy_read(PHY_BSR) & PHY_BSR_LINK != 0;
        PHY_EVENT.store(false, Ordering::Relaxed);

        wr(INT_STS, u32::MAX);
        wr(INT_EN, INT_RSFL | INT_PHY);
        wr(IRQ_CFG, IRQ_EN | IRQ_POL | IRQ_TYPE);
        crate::board::unmask(crate::board::irq::ETHERNET);

        Ok(Self { mac, link_up, bufs })
    }

    /// 25 MHz free-running counter since reset: a little entropy for the stack's seed.
    pub fn free_run() -> u32 {
        rd(FREE_RUN)
    }

    /// Bytes free in the TX data FIFO (QEMU: the whole FIFO, it sends synchronously).
    fn tx_free() -> usize {
        (rd(TX_FIFO_INF) & 0xffff) as usize
    }

    fn tx_ready(&self) -> bool {
        if Self::tx_free() >= MTU + 8 {
            return true;
        }
        // Wait for "TX data FIFO available" (level set in FIFO_INT); the IRQ masks it again.
        int_en_modify(|en| en | INT_TDFA);
        Self::tx_free() >= MTU + 8
    }
}

/// Polls `done` a bounded number of times.
fn spin_until(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..100_000 {
        if done() {
            return true;
        }
    }
    false
}

fn mac_wait() {
    spin_until(|| rd(MAC_CSR_CMD) & MAC_CSR_BUSY == 0);
}

fn mac_write(reg: u32, val: u32) {
    mac_wait();
    wr(MAC_CSR_DATA, val);
    wr(MAC_CSR_CMD, MAC_CSR_BUSY | reg);
    mac_wait();
}

fn mac_read(reg: u32) -> u32 {
    mac_wait();
    wr(MAC_CSR_CMD, MAC_CSR_BUSY | MAC_CSR_READ | reg);
    mac_wait();
    rd(MAC_CSR_DATA)
}

fn mii_wait() {
    spin_until(|| mac_read(MAC_MII_ACC) & MII_BUSY == 0);
}

fn phy_read(reg: u32) -> u32 {
    mii_wait();
    mac_write(MAC_MII_ACC, (PHY_ADDR << 11) | (reg << 6) | MII_BUSY);
    mii_wait();
    mac_read(MAC_MII_DATA) & 0xffff
}

fn phy_write(reg: u32, val: u32) {
    mii_wait();
    mac_write(MAC_MII_DATA, val);
    mac_write(MAC_MII_ACC, (PHY_ADDR << 11) | (reg << 6) | MII_WRITE | MII_BUSY);
    mii_wait();
}

fn as_bytes(words: &mut [u32]) -> &mut [u8] {
    // SAFETY: u8 has no alignment or validity requirements; the byte slice covers exactly
    // the same memory and borrows `words` mutably for its lifetime.
    unsafe { core::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), words.len() * 4) }
}

/// A received frame (CRC stripped) in the driver's RX buffer.
#[derive(Debug)]
pub struct RxToken<'a> {
    frame: &'a mut [u8],
}

/// Permission to send one frame via the driver's TX buffer.
#[derive(Debug)]
pub struct TxToken<'a> {
    buf: &'a mut [u32; TX_WORDS],
}

impl embassy_net_driver::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, f: F) -> R {
        f(self.frame)
    }
}

impl embassy_net_driver::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let len = len.min(MTU);
        let r = f(&mut as_bytes(self.buf)[..len]);
        transmit(self.buf, len);
        r
    }
}

/// Hands the first `len` bytes of `buf` to the TX FIFO. Out of line: `consume` has a copy per
/// caller (smoltcp's three), each with these writes inlined (32 B more flash).
#[inline(never)]
fn transmit(buf: &[u32], len: usize) {
    // Command A: one segment (first + last), `len` bytes, no offset, 4-byte alignment.
    wr(TX_DATA_FIFO, TXA_FIRST_SEG | TXA_LAST_SEG | len as u32);
    // Command B: packet tag (= length, as the datasheet suggests) and packet length.
    wr(TX_DATA_FIFO, ((len as u32) << 16) | len as u32);
    for &w in &buf[..len.div_ceil(4)] {
        wr(TX_DATA_FIFO, w);
    }
}

impl embassy_net_driver::Driver for Lan9118<'_> {
    type RxToken<'a>
        = RxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a>
    where
        Self: 'a;

    fn receive(&mut self, cx: &mut Context) -> Option<(RxToken<'_>, TxToken<'_>)> {
        // Register first, then look: a frame arriving after the look raises RSFL -> wake.
        WAKER.register(cx.waker());
        if !self.tx_ready() {
            return None;
        }
        loop {
            if (rd(RX_FIFO_INF) >> 16) & 0xff == 0 {
                return None;
            }
            let status = rd(RX_STATUS_FIFO);
            let len = ((status >> 16) & 0x3fff) as usize; // includes the 4 CRC bytes
            let words = len.div_ceil(4);
            let good = status & (RXS_ERROR | RXS_FILTER_FAIL) == 0 && len >= 14 + 4 && words <= RX_WORDS;
            if !good {
                for _ in 0..words {
                    let _ = rd(RX_DATA_FIFO);
                }
                continue;
            }
            for w in &mut self.bufs.rx[..words] {
                *w = rd(RX_DATA_FIFO);
            }
            let PacketBuffers { rx, tx } = &mut *self.bufs;
            return Some((RxToken { frame: &mut as_bytes(rx)[..len - 4] }, TxToken { buf: tx }));
        }
    }

    fn transmit(&mut self, cx: &mut Context) -> Option<TxToken<'_>> {
        WAKER.register(cx.waker());
        if self.tx_ready() {
            Some(TxToken { buf: &mut self.bufs.tx })
        } else {
            None
        }
    }

    fn link_state(&mut self, cx: &mut Context) -> LinkState {
        WAKER.register(cx.waker());
        if PHY_EVENT.swap(false, Ordering::Acquire) {
            let _ = phy_read(PHY_INT_SRC); // reading clears the PHY's latched events
            self.link_up = phy_read(PHY_BSR) & PHY_BSR_LINK != 0;
            int_en_modify(|en| en | INT_PHY);
        }
        if self.link_up {
            LinkState::Up
        } else {
            LinkState::Down
        }
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::default();
        caps.max_transmission_unit = MTU;
        caps
    }

    fn hardware_address(&self) -> HardwareAddress {
        HardwareAddress::Ethernet(self.mac)
    }
}
