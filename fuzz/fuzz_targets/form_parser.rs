//! Any bytes as an `application/x-www-form-urlencoded` body: the parser
//! must return, not panic, and whatever it accepts must survive
//! encode → parse unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use perch_oauth1::{parse_form, percent_encode};

fuzz_target!(|data: &[u8]| {
    if let Ok(pairs) = parse_form(data) {
        let encoded: Vec<String> =
            pairs.iter().map(|(n, v)| format!("{}={}", percent_encode(n), percent_encode(v))).collect();
        assert_eq!(parse_form(encoded.join("&").as_bytes()), Ok(pairs));
    }
});
