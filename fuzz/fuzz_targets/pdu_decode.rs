//! Fuzz target: the PDU decoder. Any byte string, with any digest setting, decodes to a PDU or
//! an error and never panics; whatever decodes re-encodes, and the re-encoded bytes decode to
//! the same PDU (the codec has one meaning for every header it accepts). The key-text parser
//! gets the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vds_iscsi::pdu::{Bhs, Digests, Header, Pdu, BHS_LEN};

fuzz_target!(|input: &[u8]| {
    let Some((&flags, bytes)) = input.split_first() else {
        return;
    };
    let digests = Digests {
        header: flags & 1 != 0,
        data: flags & 2 != 0,
    };
    let _ = vds_iscsi::text::parse(bytes);
    if bytes.len() >= BHS_LEN {
        if let Ok(bhs) = Bhs::new(bytes) {
            let _ = Header::decode(&bhs, &bytes[BHS_LEN..]);
            // The length the reader would allocate must come from bounded fields.
            assert!(bhs.wire_rest_len(true, true) <= 255 * 4 + 4 + (1 << 24) + 3 + 4);
        }
    }
    let mut at = 0;
    while at < bytes.len() {
        match Pdu::from_bytes(&bytes[at..], digests, 1 << 16) {
            Ok(Some((pdu, used))) => {
                assert!(used >= BHS_LEN && at + used <= bytes.len());
                at += used;
                let wire = match pdu.to_bytes(digests) {
                    Ok(w) => w,
                    // A decoded header the encoder refuses (e.g. a field it cannot hold) is
                    // an error outcome, not a crash.
                    Err(_) => continue,
                };
                let (again, n) = Pdu::from_bytes(&wire, digests, 1 << 16)
                    .expect("re-encoded PDU decodes")
                    .expect("re-encoded PDU is whole");
                assert_eq!(n, wire.len());
                assert_eq!(again, pdu, "decode(encode(pdu)) != pdu");
            }
            Ok(None) | Err(_) => break,
        }
    }
});
