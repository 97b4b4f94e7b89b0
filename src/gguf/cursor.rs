//! A bounds-checked little-endian reader over the mapped file bytes. It
//! never reads past the end and never allocates; the parser turns a
//! [`Short`] into an error that names the file and what was being read.

/// Not enough bytes left for a read.
#[derive(Debug, Clone, Copy)]
pub(super) struct Short {
    /// Bytes the read needed.
    pub need: u64,
    /// Where it started.
    pub pos: u64,
    /// Bytes that were left.
    pub left: u64,
}

#[derive(Clone)]
pub(super) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

macro_rules! read_le {
    ($($name:ident: $t:ty),* $(,)?) => {$(
        pub fn $name(&mut self) -> Result<$t, Short> {
            let b = self.bytes(std::mem::size_of::<$t>() as u64)?;
            Ok(<$t>::from_le_bytes(b.try_into().expect("exact length")))
        }
    )*};
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Cursor<'a> {
        Cursor { buf, pos: 0 }
    }

    pub fn pos(&self) -> u64 {
        self.pos as u64
    }

    pub fn remaining(&self) -> u64 {
        (self.buf.len() - self.pos) as u64
    }

    /// The next `n` bytes, borrowed from the buffer.
    pub fn bytes(&mut self, n: u64) -> Result<&'a [u8], Short> {
        let short = Short { need: n, pos: self.pos(), left: self.remaining() };
        if n > self.remaining() {
            return Err(short);
        }
        // n <= remaining <= usize::MAX, so the cast and the add are exact.
        let end = self.pos + n as usize;
        let b = &self.buf[self.pos..end];
        self.pos = end;
        Ok(b)
    }

    read_le!(u8: u8, i8: i8, u16: u16, i16: i16, u32: u32, i32: i32, u64: u64, i64: i64, f32: f32, f64: f64);
}
