//! CHAP (RFC 1994 as used by RFC 7143 §12.1.3): algorithms 5 (MD5), 6 (SHA-1), 7 (SHA-256)
//! and 8 (SHA3-256), response computation and constant-time verification.

use subtle::ConstantTimeEq;

/// A CHAP digest algorithm by its CHAP_A number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChapAlg {
    Md5,
    Sha1,
    Sha256,
    Sha3_256,
}

impl ChapAlg {
    pub fn from_number(n: u64) -> Option<Self> {
        match n {
            5 => Some(ChapAlg::Md5),
            6 => Some(ChapAlg::Sha1),
            7 => Some(ChapAlg::Sha256),
            8 => Some(ChapAlg::Sha3_256),
            _ => None,
        }
    }
    pub fn number(self) -> u8 {
        match self {
            ChapAlg::Md5 => 5,
            ChapAlg::Sha1 => 6,
            ChapAlg::Sha256 => 7,
            ChapAlg::Sha3_256 => 8,
        }
    }
    /// Digest (and response) length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            ChapAlg::Md5 => 16,
            ChapAlg::Sha1 => 20,
            ChapAlg::Sha256 | ChapAlg::Sha3_256 => 32,
        }
    }
    /// Challenge length the target sends: the digest length, never less than 16 bytes.
    pub fn challenge_len(self) -> usize {
        self.digest_len().max(16)
    }

    /// Response = H(identifier || secret || challenge).
    pub fn response(self, id: u8, secret: &[u8], challenge: &[u8]) -> Vec<u8> {
        fn run<D: md5::Digest>(id: u8, secret: &[u8], challenge: &[u8]) -> Vec<u8> {
            let mut h = D::new();
            h.update([id]);
            h.update(secret);
            h.update(challenge);
            h.finalize().to_vec()
        }
        match self {
            ChapAlg::Md5 => run::<md5::Md5>(id, secret, challenge),
            ChapAlg::Sha1 => run::<sha1::Sha1>(id, secret, challenge),
            ChapAlg::Sha256 => run::<sha2::Sha256>(id, secret, challenge),
            ChapAlg::Sha3_256 => run::<sha3::Sha3_256>(id, secret, challenge),
        }
    }

    /// Whether `got` is the right response; compares in constant time.
    pub fn verify(self, id: u8, secret: &[u8], challenge: &[u8], got: &[u8]) -> bool {
        let want = self.response(id, secret, challenge);
        want.len() == got.len() && bool::from(want.ct_eq(got))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::Digest as _;

    #[test]
    fn md5_response_matches_reference() {
        // MD5(0x01 || "secret" || 0x00*16), computed independently.
        let r = ChapAlg::Md5.response(1, b"secret", &[0u8; 16]);
        let mut h = md5::Md5::new();
        h.update([1u8]);
        h.update(b"secret");
        h.update([0u8; 16]);
        assert_eq!(r, h.finalize().to_vec());
        assert_eq!(r.len(), 16);
    }

    #[test]
    fn verify_rejects_wrong_secret_and_length() {
        for alg in [
            ChapAlg::Md5,
            ChapAlg::Sha1,
            ChapAlg::Sha256,
            ChapAlg::Sha3_256,
        ] {
            let c = [7u8; 16];
            let r = alg.response(9, b"secret123456", &c);
            assert_eq!(r.len(), alg.digest_len());
            assert!(alg.verify(9, b"secret123456", &c, &r));
            assert!(!alg.verify(9, b"secret123457", &c, &r));
            assert!(!alg.verify(8, b"secret123456", &c, &r));
            assert!(!alg.verify(9, b"secret123456", &c, &r[..r.len() - 1]));
        }
    }
}
