//! Journal record parsing on arbitrary bytes: must never panic, and a line
//! that parses must re-encode to exactly the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_audit::record::{self, EventHead};

fuzz_target!(|data: &[u8]| {
    let _ = record::split(data);
    let _ = record::parse::<tollgate_audit::Event>(data);
    if let Ok(parsed) = record::parse::<EventHead>(data) {
        // A self-consistent record's hash covers exactly its bytes.
        let (canonical, hash) = record::split(data).expect("parsed lines split");
        assert_eq!(record::chain_hash(&parsed.prev, canonical), hash);
        assert_eq!(hash, parsed.hash);
    }
});
