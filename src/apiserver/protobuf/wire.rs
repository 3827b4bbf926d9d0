//! Protobuf wire-format primitives: a bounds-checked reader and a writer.

use super::ProtoError;

pub const VARINT: u8 = 0;
pub const FIXED64: u8 = 1;
pub const LEN: u8 = 2;
pub const FIXED32: u8 = 5;

pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf` within the whole body, for error messages.
    base: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], base: usize) -> Self {
        Reader { buf, pos: 0, base }
    }

    pub fn offset(&self) -> usize {
        self.base + self.pos
    }

    pub fn varint(&mut self) -> Result<u64, ProtoError> {
        let start = self.offset();
        let mut value: u64 = 0;
        for shift in (0..70).step_by(7) {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(ProtoError::TruncatedVarint(start));
            };
            self.pos += 1;
            if shift == 63 && b > 1 {
                return Err(ProtoError::VarintOverflow(start));
            }
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ProtoError::VarintOverflow(start))
    }

    /// Next field key as (field number, wire type), or `None` at the end.
    pub fn key(&mut self) -> Result<Option<(u32, u8)>, ProtoError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let start = self.offset();
        let key = self.varint()?;
        let tag = u32::try_from(key >> 3).map_err(|_| ProtoError::BadTag(start))?;
        if tag == 0 {
            return Err(ProtoError::BadTag(start));
        }
        Ok(Some((tag, (key & 7) as u8)))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        let start = self.offset();
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(ProtoError::Truncated(start))?;
        let out = self
            .buf
            .get(self.pos..end)
            .ok_or(ProtoError::Truncated(start))?;
        self.pos = end;
        Ok(out)
    }

    /// A length-delimited payload, returned with its offset in the body.
    pub fn bytes(&mut self) -> Result<(&'a [u8], usize), ProtoError> {
        let start = self.offset();
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| ProtoError::Truncated(start))?;
        let at = self.offset();
        Ok((self.take(len)?, at))
    }

    pub fn fixed64(&mut self) -> Result<u64, ProtoError> {
        let b = self.take(8)?;
        let arr: [u8; 8] = b
            .try_into()
            .map_err(|_| ProtoError::Truncated(self.offset()))?;
        Ok(u64::from_le_bytes(arr))
    }

    pub fn skip(&mut self, wire_type: u8) -> Result<(), ProtoError> {
        match wire_type {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8).map(drop),
            LEN => self.bytes().map(drop),
            FIXED32 => self.take(4).map(drop),
            _ => Err(ProtoError::UnsupportedWireType(wire_type, self.offset())),
        }
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }
}

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn put_key(out: &mut Vec<u8>, tag: u32, wire_type: u8) {
    put_varint(out, (u64::from(tag) << 3) | u64::from(wire_type));
}

pub fn put_bytes(out: &mut Vec<u8>, tag: u32, data: &[u8]) {
    put_key(out, tag, LEN);
    put_varint(out, data.len() as u64);
    out.extend_from_slice(data);
}
