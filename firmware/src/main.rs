//! Smoke firmware for QEMU `mps2-an386`: brings up the LAN9118 and embassy-net (static
//! 10.0.2.15/24 on QEMU's user network), connects to 10.0.2.100:PORT (a `guestfwd` to a
//! host loopback port), sends "hello from mps2\n", prints the line it gets back and exits
//! with 0 via semihosting. Any failure, or no answer within `DEADLINE_SECS`, exits non-zero.
//!
//! PORT is fixed at build time: `FIRMWARE_PEER_PORT=1234 cargo build --release` (default 9092).
//!
//! Exit codes: 0 ok, 2 timeout, 3 NIC init, 4 connect, 5 write, 6 read/EOF,
//! 101 panic/HardFault, 102 unexpected interrupt.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
// This package (unlike the workspace, which denies `unsafe_code`) does MMIO and owns the
// vector table; every `unsafe` block carries a SAFETY note.

mod board;
mod console;
mod lan9118;
mod time_driver;

use embassy_executor::Spawner;
use embassy_net::tcp::TcpSocket;
use embassy_net::{Ipv4Address, Ipv4Cidr, Runner, StackResources, StaticConfigV4};
use embassy_time::{with_timeout, Duration};
use static_cell::{ConstStaticCell, StaticCell};

use crate::console::{print, print_kv};
use crate::lan9118::{Lan9118, PacketBuffers};

/// The guestfwd address QEMU's user network forwards to the host port.
const PEER_ADDR: Ipv4Address = Ipv4Address::new(10, 0, 2, 100);
const PEER_PORT: u16 = parse_port(option_env!("FIRMWARE_PEER_PORT"));
/// The whole exchange must finish within this.
const DEADLINE_SECS: u64 = 20;
/// Locally administered unicast MAC.
const MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x12, 0x34, 0x56];

const fn parse_port(s: Option<&str>) -> u16 {
    let b = match s {
        Some(s) => s.as_bytes(),
        None => return 9092,
    };
    assert!(!b.is_empty() && b.len() <= 5, "FIRMWARE_PEER_PORT: not a port number");
    let mut n: u32 = 0;
    let mut i = 0;
    while i < b.len() {
        assert!(b[i].is_ascii_digit(), "FIRMWARE_PEER_PORT: not a port number");
        n = n * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    assert!(n > 0 && n <= 65535, "FIRMWARE_PEER_PORT: out of range");
    n as u16
}

#[cortex_m_rt::entry]
fn main() -> ! {
    let p = cortex_m::Peripherals::take().unwrap();
    time_driver::init(p.SYST);
    board::run_executor(|spawner| match main_task(spawner) {
        Ok(task) => spawner.spawn(task),
        Err(_) => console::exit(101),
    })
}

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, Lan9118<'static>>) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn main_task(spawner: Spawner) {
    let code = match with_timeout(Duration::from_secs(DEADLINE_SECS), smoke(spawner)).await {
        Ok(Ok(())) => 0,
        Ok(Err(code)) => code,
        Err(_) => {
            print("timeout\n");
            2
        }
    };
    print_kv("stack used: ", board::stack_used());
    print_kv("static ram: ", board::static_ram());
    console::exit(code)
}

async fn smoke(spawner: Spawner) -> Result<(), u32> {
    static BUFS: ConstStaticCell<PacketBuffers> = ConstStaticCell::new(PacketBuffers::new());
    static RESOURCES: StaticCell<StackResources<3>> = StaticCell::new();

    let nic = Lan9118::new(MAC, BUFS.take()).map_err(|_| {
        print("lan9118 init failed\n");
        3u32
    })?;
    let config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(Ipv4Address::new(10, 0, 2, 15), 24),
        gateway: Some(Ipv4Address::new(10, 0, 2, 2)),
        dns_servers: heapless::Vec::new(),
    });
    let seed = u64::from(Lan9118::free_run()) << 32 | u64::from(cortex_m::peripheral::SYST::get_current());
    let (stack, runner) = embassy_net::new(nic, config, RESOURCES.init(StackResources::new()), seed);
    // (`.unwrap()` here would pull `SpawnError`'s Debug impl and core::fmt into flash.)
    spawner.spawn(net_task(runner).map_err(|_| 101u32)?);
    stack.wait_config_up().await;
    print("net up\n");

    let mut rx = [0u8; 256];
    let mut tx = [0u8; 256];
    let mut socket = TcpSocket::new(stack, &mut rx, &mut tx);
    if socket.connect((PEER_ADDR, PEER_PORT)).await.is_err() {
        print("connect failed\n");
        return Err(4);
    }
    print_kv("connected to 10.0.2.100:", PEER_PORT.into());
    if embedded_io_async::Write::write_all(&mut socket, b"hello from mps2\n").await.is_err() {
        print("write failed\n");
        return Err(5);
    }

    let mut line = [0u8; 128];
    let mut n = 0;
    while !line[..n].contains(&b'\n') && n < line.len() {
        match socket.read(&mut line[n..]).await {
            Ok(0) | Err(_) => {
                print("read failed\n");
                return Err(6);
            }
            Ok(k) => n += k,
        }
    }
    print("reply: ");
    console::write_bytes(&line[..n]);
    socket.close();
    let _ = socket.flush().await;
    Ok(())
}
