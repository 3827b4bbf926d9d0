//! One agent connection of the shim: its buffers, reading request lines, and writing
//! answers, with the file descriptors some answers carry (SCM_RIGHTS on their first byte).
//!
//! Owned and driven by the loop in `server`; it never blocks (the socket is non-blocking)
//! and never interprets requests.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use super::protocol::MAX_REQUEST_BYTES;

pub struct Client {
    pub stream: UnixStream,
    pub inbuf: Vec<u8>,
    pub outbuf: Vec<u8>,
    /// Fds to send with the byte at each offset of `outbuf` (the start of their answer).
    pub fds: VecDeque<(usize, Vec<OwnedFd>)>,
    /// Stop reading: EOF, an oversized line, or the peer went away.
    pub closed: bool,
}

impl Client {
    pub fn new(stream: UnixStream) -> Client {
        Client {
            stream,
            inbuf: Vec::new(),
            outbuf: Vec::new(),
            fds: VecDeque::new(),
            closed: false,
        }
    }

    /// Queues one answer line and the fds that go with it.
    pub fn queue(&mut self, line: &[u8], fds: Vec<OwnedFd>) {
        if !fds.is_empty() {
            self.fds.push_back((self.outbuf.len(), fds));
        }
        self.outbuf.extend_from_slice(line);
    }
}

/// Reads what is available and splits complete lines; an oversized line closes the client.
pub fn read_lines(c: &mut Client, lines: &mut Vec<Result<Vec<u8>, String>>) {
    let mut buf = [0u8; 8192];
    loop {
        match c.stream.read(&mut buf) {
            Ok(0) => {
                c.closed = true;
                break;
            }
            Ok(n) => c.inbuf.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                c.closed = true;
                c.outbuf.clear();
                break;
            }
        }
        if c.inbuf.len() > MAX_REQUEST_BYTES {
            break;
        }
    }
    while let Some(nl) = c.inbuf.iter().position(|b| *b == b'\n') {
        let line: Vec<u8> = c.inbuf.drain(..=nl).take(nl).collect();
        if !line.iter().all(|b| b.is_ascii_whitespace()) {
            lines.push(Ok(line));
        }
    }
    if c.inbuf.len() > MAX_REQUEST_BYTES {
        lines.push(Err(format!(
            "request line longer than {MAX_REQUEST_BYTES} bytes"
        )));
        c.inbuf.clear();
        c.closed = true;
    }
}

pub fn flush(c: &mut Client) {
    while !c.outbuf.is_empty() {
        // Send up to the next answer that carries fds; an answer's fds go with its first byte.
        let next = c.fds.iter().map(|(at, _)| *at).find(|at| *at > 0);
        let end = next.unwrap_or(c.outbuf.len());
        let res = match c.fds.front() {
            Some((0, fds)) => send_with_fds(&c.stream, &c.outbuf[..end], fds),
            _ => c.stream.write(&c.outbuf[..end]),
        };
        match res {
            Ok(0) => break,
            Ok(n) => {
                c.outbuf.drain(..n);
                if c.fds.front().is_some_and(|(at, _)| *at == 0) {
                    // Sent (the kernel holds its own references now): ours close here.
                    c.fds.pop_front();
                }
                for (at, _) in c.fds.iter_mut() {
                    *at -= n;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                // The agent went away; it will reconnect and ask for State.
                c.outbuf.clear();
                c.fds.clear();
                c.closed = true;
            }
        }
    }
}

fn send_with_fds(stream: &UnixStream, bytes: &[u8], fds: &[OwnedFd]) -> io::Result<usize> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
    let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let cmsg = [ControlMessage::ScmRights(&raw)];
    sendmsg::<UnixAddr>(
        stream.as_raw_fd(),
        &[IoSlice::new(bytes)],
        &cmsg,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(io::Error::from)
}
