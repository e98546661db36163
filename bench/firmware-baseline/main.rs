//! The firmware of `firmware/` without the producer, for picokafka's share of flash and RAM
//! (bench/scripts/firmware-size): the same board, NIC, embassy-net stack and the same records
//! (key, JSON value, two headers), written as plain bytes to one TCP connection with the same
//! socket buffers the producer's connection has (1 KiB rx, 2 KiB tx). What is left when picokafka
//! and picokafka-embassy go is what a firmware would need anyway to send its data somewhere.
//!
//! Built in a copy of firmware/ with this file as src/main.rs and picokafka removed from
//! Cargo.toml; it uses firmware/'s board, console, lan9118 and time_driver modules unchanged.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

mod board;
mod console;
mod lan9118;
mod time_driver;

use embassy_executor::Spawner;
use embassy_net::tcp::TcpSocket;
use embassy_net::{Ipv4Address, Ipv4Cidr, Runner, StackResources, StaticConfigV4};
use embassy_time::{Duration, Instant};
use embedded_io_async::Write as _;
use static_cell::{ConstStaticCell, StaticCell};

use crate::console::{print, print_kv};
use crate::lan9118::{Lan9118, PacketBuffers};

const PEER_PORT: u16 = 9092;
const RECORDS: u32 = 10_000;
const DEADLINE_SECS: u64 = 300;
const MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x12, 0x34, 0x56];

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
    let deadline = Duration::from_secs(DEADLINE_SECS);
    let code = match embassy_time::with_timeout(deadline, send(spawner)).await {
        Ok(Ok(code)) => code,
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

/// Decimal digits of `n` into `buf`, returning them.
fn decimal(mut n: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

async fn send(spawner: Spawner) -> Result<u32, u32> {
    static BUFS: ConstStaticCell<PacketBuffers> = ConstStaticCell::new(PacketBuffers::new());
    static NET: StaticCell<StackResources<3>> = StaticCell::new();
    static RX: ConstStaticCell<[u8; 1024]> = ConstStaticCell::new([0; 1024]);
    static TX: ConstStaticCell<[u8; 2048]> = ConstStaticCell::new([0; 2048]);

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
    let (stack, runner) = embassy_net::new(nic, config, NET.init(StackResources::new()), seed);
    spawner.spawn(net_task(runner).map_err(|_| 101u32)?);
    stack.wait_config_up().await;
    print("net up\n");

    let mut socket = TcpSocket::new(stack, RX.take(), TX.take());
    socket.set_timeout(Some(Duration::from_secs(30)));
    socket.connect((Ipv4Address::new(10, 0, 2, 100), PEER_PORT)).await.map_err(|_| 4u32)?;
    let started = Instant::now();
    let mut refused = 0;
    for i in 0..RECORDS {
        let mut key = [0u8; 16];
        key[..7].copy_from_slice(b"device-");
        let mut d = [0u8; 10];
        let id = decimal(i % 16, &mut d);
        key[7..7 + id.len()].copy_from_slice(id);
        let key = &key[..7 + id.len()];
        let mut s = [0u8; 10];
        let seq = decimal(i, &mut s);
        let parts: [&[u8]; 9] =
            [key, b" {\"reading\":", seq, b"} seq=", seq, b" board=", b"mps2-an386", b"\n", b""];
        for part in parts {
            if socket.write_all(part).await.is_err() {
                refused += 1;
            }
        }
    }
    let _ = socket.flush().await;
    socket.close();
    print_kv("records written: ", RECORDS);
    print_kv("elapsed ms: ", started.elapsed().as_millis() as u32);
    Ok(if refused == 0 { 0 } else { 1 })
}
