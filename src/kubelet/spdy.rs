//! SPDY/3.1 framing, as far as Kubernetes' port-forward protocol uses it: SYN_STREAM,
//! SYN_REPLY, RST_STREAM, PING, GOAWAY, HEADERS and DATA frames, and the zlib-compressed
//! name/value header blocks with the protocol's preset dictionary.
//!
//! Written here because no maintained Rust crate speaks SPDY (it was superseded by HTTP/2
//! before Rust had an ecosystem), and kubectl still tunnels port-forward through it. Like
//! Go's spdystream, which kubectl uses, this does no flow control: WINDOW_UPDATE and
//! SETTINGS are read and ignored. This module owns bytes on the wire only: no streams, no
//! sockets (see `portforward`).

use std::io;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The zlib dictionary every SPDY/3 header block is compressed with: protocol data from the
/// SPDY/3 draft (1423 bytes), not code.
pub const DICTIONARY: &[u8] = include_bytes!("spdy3.dict");

/// Larger frames are refused; port-forward's data frames are a few KiB.
const MAX_FRAME: usize = 1 << 24;
pub const MAX_DATA: usize = 32 * 1024;

pub const FLAG_FIN: u8 = 0x01;

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;

/// RST_STREAM status codes used here.
pub const RST_PROTOCOL_ERROR: u32 = 1;
pub const RST_REFUSED_STREAM: u32 = 3;

pub type Headers = Vec<(String, String)>;

#[derive(Debug, PartialEq)]
pub enum Frame {
    SynStream {
        id: u32,
        flags: u8,
        headers: Headers,
    },
    SynReply {
        id: u32,
        flags: u8,
    },
    RstStream {
        id: u32,
        status: u32,
    },
    Ping(u32),
    GoAway,
    Headers {
        id: u32,
        flags: u8,
    },
    Data {
        id: u32,
        flags: u8,
        data: Vec<u8>,
    },
    /// SETTINGS, WINDOW_UPDATE, and whatever a newer peer sends: nothing to do.
    Ignored,
}

#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    #[error("spdy: reading the connection: {0}")]
    Io(#[from] io::Error),
    #[error("spdy: frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
    #[error("spdy: unsupported version {0}")]
    Version(u16),
    #[error("spdy: malformed {what} frame")]
    Malformed { what: &'static str },
    #[error("spdy: header block: {0}")]
    Headers(String),
}

/// The per-connection header decompressor (one zlib stream spans all header blocks).
pub struct Reader {
    inflate: Decompress,
}

impl Default for Reader {
    fn default() -> Self {
        Reader {
            inflate: Decompress::new(true),
        }
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl Reader {
    /// The next frame; `None` at a clean end of the connection.
    pub async fn next<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
    ) -> Result<Option<Frame>, SpdyError> {
        let mut head = [0u8; 8];
        match r.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let flags = head[4];
        let len = (be32(&head[4..8]) & 0x00ff_ffff) as usize;
        if len > MAX_FRAME {
            return Err(SpdyError::TooLarge(len));
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).await?;
        if head[0] & 0x80 == 0 {
            return Ok(Some(Frame::Data {
                id: be32(&head[0..4]) & 0x7fff_ffff,
                flags,
                data: body,
            }));
        }
        let version = u16::from_be_bytes([head[0] & 0x7f, head[1]]);
        if version != 3 {
            return Err(SpdyError::Version(version));
        }
        let kind = u16::from_be_bytes([head[2], head[3]]);
        let need = |n: usize, what: &'static str| {
            if body.len() < n {
                Err(SpdyError::Malformed { what })
            } else {
                Ok(())
            }
        };
        let id = || be32(&body[0..4]) & 0x7fff_ffff;
        Ok(Some(match kind {
            SYN_STREAM => {
                need(10, "SYN_STREAM")?;
                let headers = self.headers(&body[10..])?;
                Frame::SynStream {
                    id: id(),
                    flags,
                    headers,
                }
            }
            SYN_REPLY => {
                need(4, "SYN_REPLY")?;
                self.headers(&body[4..])?;
                Frame::SynReply { id: id(), flags }
            }
            RST_STREAM => {
                need(8, "RST_STREAM")?;
                Frame::RstStream {
                    id: id(),
                    status: be32(&body[4..8]),
                }
            }
            PING => {
                need(4, "PING")?;
                Frame::Ping(be32(&body[0..4]))
            }
            GOAWAY => Frame::GoAway,
            HEADERS => {
                need(4, "HEADERS")?;
                self.headers(&body[4..])?;
                Frame::Headers { id: id(), flags }
            }
            _ => Frame::Ignored,
        }))
    }

    /// Inflates one header block (the stream continues from the previous block) and parses
    /// its name/value pairs.
    fn headers(&mut self, block: &[u8]) -> Result<Headers, SpdyError> {
        let bad = |m: String| SpdyError::Headers(m);
        let mut out = Vec::with_capacity(block.len() * 4 + 64);
        let mut input = block;
        loop {
            if out.capacity() - out.len() < 1024 {
                out.reserve(4096);
            }
            let before = self.inflate.total_in();
            let produced = out.len();
            match self
                .inflate
                .decompress_vec(input, &mut out, FlushDecompress::Sync)
            {
                Ok(status) => {
                    let used = (self.inflate.total_in() - before) as usize;
                    input = &input[used..];
                    if used == 0 && out.len() == produced {
                        if input.is_empty() {
                            break;
                        }
                        return Err(bad("the compressed block makes no progress".into()));
                    }
                    if input.is_empty() && out.capacity() > out.len() {
                        break;
                    }
                    if status == Status::StreamEnd {
                        break;
                    }
                }
                Err(e) if e.needs_dictionary().is_some() => {
                    let used = (self.inflate.total_in() - before) as usize;
                    input = &input[used..];
                    self.inflate
                        .set_dictionary(DICTIONARY)
                        .map_err(|e| bad(e.to_string()))?;
                }
                Err(e) => return Err(bad(e.to_string())),
            }
            if out.len() > MAX_FRAME {
                return Err(bad("decompresses to more than the limit".into()));
            }
        }
        parse_block(&out).ok_or_else(|| bad("truncated name/value block".into()))
    }
}

fn parse_block(b: &[u8]) -> Option<Headers> {
    let take = |b: &mut &[u8], n: usize| -> Option<Vec<u8>> {
        if b.len() < n {
            return None;
        }
        let (h, t) = b.split_at(n);
        *b = t;
        Some(h.to_vec())
    };
    let mut rest = b;
    let count = be32(&take(&mut rest, 4)?);
    let mut out = Vec::new();
    for _ in 0..count {
        let n = be32(&take(&mut rest, 4)?) as usize;
        let name = take(&mut rest, n)?;
        let n = be32(&take(&mut rest, 4)?) as usize;
        let value = take(&mut rest, n)?;
        out.push((
            String::from_utf8_lossy(&name).to_lowercase(),
            String::from_utf8_lossy(&value).into_owned(),
        ));
    }
    Some(out)
}

/// The per-connection header compressor, for the frames we send.
pub struct Writer {
    deflate: Compress,
}

impl Default for Writer {
    fn default() -> Self {
        let mut deflate = Compress::new(Compression::default(), true);
        // A fresh stream takes the dictionary before any data; failure leaves a plain zlib
        // stream, which peers also read.
        let _ = deflate.set_dictionary(DICTIONARY);
        Writer { deflate }
    }
}

fn control(kind: u16, flags: u8, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(8 + body.len());
    f.extend_from_slice(&(0x8003u16).to_be_bytes());
    f.extend_from_slice(&kind.to_be_bytes());
    f.extend_from_slice(&((u32::from(flags) << 24) | body.len() as u32).to_be_bytes());
    f.extend_from_slice(body);
    f
}

impl Writer {
    fn block(&mut self, headers: &[(&str, &str)]) -> Vec<u8> {
        let mut raw = Vec::new();
        raw.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        for (k, v) in headers {
            for s in [k, v] {
                raw.extend_from_slice(&(s.len() as u32).to_be_bytes());
                raw.extend_from_slice(s.as_bytes());
            }
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut input = &raw[..];
        loop {
            out.reserve(256);
            let before = self.deflate.total_in();
            if self
                .deflate
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .is_err()
            {
                break;
            }
            input = &input[(self.deflate.total_in() - before) as usize..];
            // Sync flush is complete when it stopped short of filling the buffer.
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        out
    }

    pub fn syn_reply(&mut self, id: u32, headers: &[(&str, &str)]) -> Vec<u8> {
        let mut body = id.to_be_bytes().to_vec();
        body.extend(self.block(headers));
        control(SYN_REPLY, 0, &body)
    }

    /// For tests and clients: a SYN_STREAM with these headers.
    pub fn syn_stream(&mut self, id: u32, flags: u8, headers: &[(&str, &str)]) -> Vec<u8> {
        let mut body = id.to_be_bytes().to_vec();
        body.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        body.extend(self.block(headers));
        control(SYN_STREAM, flags, &body)
    }
}

pub fn rst_stream(id: u32, status: u32) -> Vec<u8> {
    let mut body = id.to_be_bytes().to_vec();
    body.extend_from_slice(&status.to_be_bytes());
    control(RST_STREAM, 0, &body)
}

pub fn ping(id: u32) -> Vec<u8> {
    control(PING, 0, &id.to_be_bytes())
}

pub fn data(id: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(8 + payload.len());
    f.extend_from_slice(&(id & 0x7fff_ffff).to_be_bytes());
    f.extend_from_slice(&((u32::from(flags) << 24) | payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_is_the_specs() {
        assert_eq!(DICTIONARY.len(), 1423);
        assert!(DICTIONARY.starts_with(b"\0\0\0\x07options"));
        assert!(DICTIONARY.ends_with(b"enq=0."));
    }

    #[tokio::test]
    async fn frames_round_trip_through_one_compression_context() {
        let mut w = Writer::default();
        let mut bytes = w.syn_stream(1, 0, &[("streamtype", "error"), ("port", "80")]);
        bytes.extend(w.syn_stream(3, FLAG_FIN, &[("streamtype", "data"), ("port", "80")]));
        bytes.extend(data(3, FLAG_FIN, b"hello"));
        bytes.extend(ping(7));
        bytes.extend(rst_stream(3, RST_REFUSED_STREAM));
        let mut r = Reader::default();
        let mut input = &bytes[..];
        let h = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(
            r.next(&mut input).await.unwrap(),
            Some(Frame::SynStream {
                id: 1,
                flags: 0,
                headers: vec![h("streamtype", "error"), h("port", "80")]
            })
        );
        assert_eq!(
            r.next(&mut input).await.unwrap(),
            Some(Frame::SynStream {
                id: 3,
                flags: FLAG_FIN,
                headers: vec![h("streamtype", "data"), h("port", "80")]
            })
        );
        assert_eq!(
            r.next(&mut input).await.unwrap(),
            Some(Frame::Data {
                id: 3,
                flags: FLAG_FIN,
                data: b"hello".to_vec()
            })
        );
        assert_eq!(r.next(&mut input).await.unwrap(), Some(Frame::Ping(7)));
        assert_eq!(
            r.next(&mut input).await.unwrap(),
            Some(Frame::RstStream {
                id: 3,
                status: RST_REFUSED_STREAM
            })
        );
        assert_eq!(r.next(&mut input).await.unwrap(), None);
    }

    #[tokio::test]
    async fn hostile_frames_are_errors_not_panics() {
        let mut r = Reader::default();
        let mut huge: &[u8] = &[0x80, 3, 0, 1, 0, 0xff, 0xff, 0xff];
        assert!(r.next(&mut huge).await.is_err());
        let mut short: &[u8] = &[0x80, 3, 0, 1, 0, 0, 0, 2, 0, 0];
        assert!(r.next(&mut short).await.is_err());
        let mut garbage_block: &[u8] = &[
            0x80, 3, 0, 1, 0, 0, 0, 14, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4,
        ];
        assert!(Reader::default().next(&mut garbage_block).await.is_err());
        let mut v2: &[u8] = &[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1];
        assert!(r.next(&mut v2).await.is_err());
    }
}
