//! Equivalent JSON spellings of one request (whitespace, key order,
//! escapes, number forms, batch order, A2A 0.3/1.0 names) are never decided
//! more leniently than the request, and non-strict forms (a byte order
//! mark, UTF-16, `NaN`, `1e400`, duplicate keys, lone surrogates, trailing
//! data) are refused: the `json_spellings` fuzz target's property, run here
//! over a fixed stream of pseudo-random inputs so every build checks it.
// Test code: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "support_spellings/mod.rs"]
mod spellings;

/// xorshift64*: a fixed, reproducible stream of inputs.
fn inputs(seed: u64, count: usize, len: usize) -> impl Iterator<Item = Vec<u8>> {
    let mut state = seed;
    (0..count).map(move |_| {
        (0..len)
            .map(|_| {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
            })
            .collect()
    })
}

#[test]
fn spellings_are_never_decided_more_leniently() {
    let policy = spellings::policy();
    for data in inputs(0x9e37_79b9_7f4a_7c15, 20_000, 160) {
        spellings::check(&policy, &data);
    }
    // The empty input and a run of zeros (every first choice) too.
    spellings::check(&policy, &[]);
    spellings::check(&policy, &[0; 64]);
}
