//! The disk's rate of small durable writes, for `scripts/bench`: `write(100 bytes)` +
//! `fsync` on one file, in a loop, for a few seconds, in the directory given (put it where
//! agent-monitor's database lives). This is what one SQLite commit in WAL mode with
//! `synchronous=FULL` costs at least (one append to the WAL, one fsync).
//!
//! `cargo run --release -p agent-monitor --example fsync_rate -- DIR [SECONDS]`
//! prints `fsyncs_per_sec=<rate> count=<n> secs=<s>`.

use std::io::Write;
use std::time::{Duration, Instant};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| ".".into()));
    let secs: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let path = dir.join("fsync-rate.tmp");
    let mut f = std::fs::OpenOptions::new().create(true).write(true).truncate(true).open(&path)?;
    let block = [b'x'; 100];
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut n = 0u64;
    while Instant::now() < end {
        f.write_all(&block)?;
        f.sync_all()?;
        n += 1;
    }
    let took = start.elapsed().as_secs_f64();
    std::fs::remove_file(&path)?;
    println!("fsyncs_per_sec={:.0} count={n} secs={took:.2}", n as f64 / took);
    Ok(())
}
