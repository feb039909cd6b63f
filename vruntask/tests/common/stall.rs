//! A libvirt that stops answering chosen calls: a Unix-socket proxy in front of libvirtd's
//! socket that forwards everything but holds the calls it is told to (by RPC procedure
//! number) until [`StallProxy::release`]. Jobs reach libvirt through it
//! (`VRUN_LIBVIRT_URI=qemu+unix:///system?socket=…`), so a test can stall exactly one call —
//! `define`, say — of exactly one job, deterministically, while every other client
//! (agent-monitor, other tests, virsh) talks to libvirtd directly.
//!
//! libvirt's RPC packets are a 4-byte big-endian length (counting itself) followed by a
//! header of program, version, procedure, type, serial and status (4 bytes each).

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// libvirt's main RPC program.
const REMOTE_PROGRAM: u32 = 0x2000_8086;
/// Procedure numbers of `src/remote/remote_protocol.x`.
pub const DOMAIN_DEFINE_XML: u32 = 11;
pub const DOMAIN_DEFINE_XML_FLAGS: u32 = 350;
pub const DOMAIN_CREATE: u32 = 9;
pub const DOMAIN_CREATE_WITH_FLAGS: u32 = 196;

const LIBVIRT_SOCKET: &str = "/run/libvirt/libvirt-sock";

struct Gate {
    holding: Mutex<bool>,
    opened: Condvar,
    held: AtomicUsize,
}

pub struct StallProxy {
    /// The URI that reaches libvirtd through this proxy.
    pub uri: String,
    gate: Arc<Gate>,
}

impl StallProxy {
    /// Listens in `dir`; holds calls whose procedure is in `hold`.
    pub fn start(dir: &Path, hold: &'static [u32]) -> StallProxy {
        let path = dir.join("libvirt-stall.sock");
        let listener = UnixListener::bind(&path).expect("bind the stall proxy");
        let gate = Arc::new(Gate { holding: Mutex::new(true), opened: Condvar::new(), held: AtomicUsize::new(0) });
        let g = Arc::clone(&gate);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = UnixStream::connect(LIBVIRT_SOCKET) else { continue };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || copy_answers(s2, c2));
                let g = Arc::clone(&g);
                std::thread::spawn(move || forward_calls(client, server, hold, &g));
            }
        });
        StallProxy { uri: format!("qemu+unix:///system?socket={}", path.display()), gate }
    }

    /// How many calls are being held (or were, before a release).
    pub fn held(&self) -> usize {
        self.gate.held.load(Ordering::SeqCst)
    }

    /// Lets every held call, and every later one, through.
    pub fn release(&self) {
        *self.gate.holding.lock().unwrap() = false;
        self.gate.opened.notify_all();
    }
}

impl Drop for StallProxy {
    fn drop(&mut self) {
        self.release();
    }
}

fn copy_answers(mut from: UnixStream, mut to: UnixStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(std::net::Shutdown::Both);
}

fn forward_calls(mut client: UnixStream, mut server: UnixStream, hold: &[u32], gate: &Gate) {
    loop {
        let mut len = [0u8; 4];
        if client.read_exact(&mut len).is_err() {
            break;
        }
        let n = u32::from_be_bytes(len) as usize;
        let mut body = vec![0u8; n.saturating_sub(4)];
        if client.read_exact(&mut body).is_err() {
            break;
        }
        if body.len() >= 12 {
            let word = |i: usize| u32::from_be_bytes(body[i..i + 4].try_into().unwrap());
            if word(0) == REMOTE_PROGRAM && hold.contains(&word(8)) {
                let mut holding = gate.holding.lock().unwrap();
                if *holding {
                    gate.held.fetch_add(1, Ordering::SeqCst);
                    while *holding {
                        holding = gate.opened.wait(holding).unwrap();
                    }
                }
            }
        }
        if server.write_all(&len).and_then(|_| server.write_all(&body)).is_err() {
            break;
        }
    }
    let _ = server.shutdown(std::net::Shutdown::Both);
}
