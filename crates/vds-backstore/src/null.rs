//! The null store: reads zeroes, discards writes. For benchmarks of everything above storage.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{check_range, BackingStore};

/// A LUN with no storage behind it.
#[derive(Debug)]
pub struct NullStore {
    size: AtomicU64,
}

impl NullStore {
    pub fn new(size: u64) -> NullStore {
        NullStore {
            size: AtomicU64::new(size),
        }
    }
}

impl BackingStore for NullStore {
    fn kind(&self) -> &'static str {
        "null"
    }

    fn size(&self) -> u64 {
        self.size.load(Ordering::Relaxed)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(offset, buf.len() as u64, self.size())?;
        buf.fill(0);
        Ok(())
    }

    fn read_into(&self, buf: &mut Vec<u8>, len: usize, offset: u64) -> io::Result<()> {
        check_range(offset, len as u64, self.size())?;
        // Zeroing the buffer is the read: one pass, not two.
        buf.clear();
        buf.resize(len, 0);
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64, _fua: bool) -> io::Result<()> {
        check_range(offset, buf.len() as u64, self.size())
    }

    fn try_read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        // Nothing here ever waits.
        self.read_at(buf, offset)
    }

    fn try_read_into(&self, buf: &mut Vec<u8>, len: usize, offset: u64) -> io::Result<()> {
        self.read_into(buf, len, offset)
    }

    fn try_write_at(&self, buf: &[u8], offset: u64, fua: bool) -> io::Result<()> {
        self.write_at(buf, offset, fua)
    }

    fn flush(&self) -> io::Result<()> {
        Ok(())
    }

    fn unmap(&self, offset: u64, len: u64) -> io::Result<()> {
        check_range(offset, len, self.size())
    }

    fn resize(&self, new_size: u64) -> io::Result<()> {
        self.size.store(new_size, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_zeroes_after_writes() {
        let s = NullStore::new(1 << 20);
        s.write_at(&[3u8; 512], 0, true).unwrap();
        let mut b = [1u8; 512];
        s.read_at(&mut b, 0).unwrap();
        assert_eq!(b, [0u8; 512]);
        assert!(s.read_at(&mut b, (1 << 20) - 1).is_err());
    }

    #[test]
    fn read_into_a_used_buffer_gives_zeroes_of_the_asked_length() {
        let s = NullStore::new(1 << 20);
        let mut v = vec![9u8; 8192];
        s.read_into(&mut v, 4096, 512).unwrap();
        assert_eq!(v, vec![0u8; 4096]);
        assert!(s.read_into(&mut v, 4096, (1 << 20) - 512).is_err());
    }
}
