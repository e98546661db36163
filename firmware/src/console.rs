//! Tiny semihosting console: `&str` and unsigned numbers, no `core::fmt` (keeps flash small),
//! plus a semihosting exit with an exit code.
//!
//! Semihosting calls trap to the debugger/QEMU (`bkpt 0xAB`): run QEMU with
//! `-semihosting-config enable=on,target=native`, or the first call hard-faults.

use cortex_m_semihosting::hio::{self, HostStream};

/// Host stdout handle, opened on first use. Only touched inside a critical section.
static STDOUT: critical_section::Mutex<core::cell::Cell<Option<HostStream>>> =
    critical_section::Mutex::new(core::cell::Cell::new(None));

/// Writes raw bytes to the host's stdout. Errors (no host attached) are ignored.
pub fn write_bytes(bytes: &[u8]) {
    critical_section::with(|cs| {
        let cell = STDOUT.borrow(cs);
        let mut stream = match cell.get() {
            Some(s) => s,
            None => match hio::hstdout() {
                Ok(s) => {
                    cell.set(Some(s));
                    s
                }
                Err(()) => return,
            },
        };
        let _ = stream.write_all(bytes);
    });
}

/// Writes a string to the host's stdout.
pub fn print(s: &str) {
    write_bytes(s.as_bytes());
}

/// Writes an unsigned number in decimal.
pub fn print_u32(mut n: u32) {
    let mut buf = [0u8; 10];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    write_bytes(&buf[i..]);
}

/// `label` followed by `n` and a newline.
pub fn print_kv(label: &str, n: u32) {
    print(label);
    print_u32(n);
    print("\n");
}

/// Ends the QEMU process with `code` as its exit status (semihosting `SYS_EXIT_EXTENDED`,
/// reason `ADP_Stopped_ApplicationExit`; QEMU honours the sub-code on A32/T32 too).
pub fn exit(code: u32) -> ! {
    const SYS_EXIT_EXTENDED: usize = 0x20;
    const ADP_STOPPED_APPLICATION_EXIT: u32 = 0x20026;
    let block = [ADP_STOPPED_APPLICATION_EXIT, code];
    // SAFETY: SYS_EXIT_EXTENDED reads the two-word parameter block we pass by reference;
    // it does not return under QEMU.
    unsafe {
        cortex_m_semihosting::syscall(SYS_EXIT_EXTENDED, &block);
    }
    // Not under a semihosting host that implements it: fall back to plain SYS_EXIT.
    cortex_m_semihosting::debug::exit(if code == 0 {
        cortex_m_semihosting::debug::EXIT_SUCCESS
    } else {
        cortex_m_semihosting::debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi();
    }
}
