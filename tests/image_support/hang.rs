//! A registry that hangs, in front of a real one: it accepts connections and then, by mode,
//! never answers at all, answers blob downloads with their headers and a little data and
//! then stalls, or trickles blobs a byte at a time (progress, but a pull that never ends).
//! Everything else is relayed untouched. Plain threads, so sync and async tests can use it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Accept, read the request, never answer.
    Silent,
    /// Relay blob answers' headers and first 4 KiB (a whole image config), then send
    /// nothing more.
    StallBlobs,
    /// Relay blob answers' first 4 KiB, then one byte every 200 ms.
    TrickleBlobs,
}

pub struct Hang {
    pub addr: String,
    stop: Arc<AtomicBool>,
}

impl Drop for Hang {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(&self.addr);
    }
}

impl Hang {
    /// Serve on a free loopback port in front of the registry at `upstream` (`host:port`).
    pub fn start(upstream: String, mode: Mode) -> std::io::Result<Hang> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?.to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (up, flag) = (upstream.clone(), flag.clone());
                std::thread::spawn(move || serve(conn, &up, mode, &flag));
            }
        });
        Ok(Hang { addr, stop })
    }
}

fn hold(flag: &AtomicBool) {
    while !flag.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn serve(mut client: TcpStream, upstream: &str, mode: Mode, flag: &AtomicBool) {
    // The request head (registry requests here have no body).
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    if mode == Mode::Silent {
        return hold(flag);
    }
    let Ok(mut server) = TcpStream::connect(upstream) else {
        return;
    };
    // One request per connection: the client opens a connection per request.
    let head = String::from_utf8_lossy(&head).replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n");
    if server.write_all(head.as_bytes()).is_err() {
        return;
    }
    let blob = head
        .lines()
        .next()
        .is_some_and(|l| l.starts_with("GET ") && l.contains("/blobs/"));
    let mut answer = Vec::new();
    let _ = server.read_to_end(&mut answer);
    if !blob {
        let _ = client.write_all(&answer);
        return;
    }
    let body_at = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .unwrap_or(answer.len());
    let head_start = (body_at + 4096).min(answer.len());
    match mode {
        Mode::StallBlobs => {
            let _ = client.write_all(&answer[..head_start]);
            hold(flag);
        }
        Mode::TrickleBlobs => {
            if client.write_all(&answer[..head_start]).is_err() {
                return;
            }
            for b in &answer[head_start..] {
                if flag.load(Ordering::SeqCst) || client.write_all(&[*b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        Mode::Silent => {}
    }
}
