//! Any string as an `Authorization` header: the parser must return, not
//! panic, and whatever it accepts must survive build → parse unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use perch_oauth1::{IncomingRequest, build_authorization, parse_authorization};

fuzz_target!(|data: &str| {
    if let Ok(header) = parse_authorization(data) {
        let rebuilt = build_authorization(header.realm.as_deref(), &header.params);
        assert_eq!(parse_authorization(&rebuilt).as_ref(), Ok(&header), "rebuilt: {rebuilt:?}");
    }
    // The whole server-side collection on top of it must not panic either.
    let _ = IncomingRequest {
        method: "POST",
        url: "https://example.com/p?a=1",
        authorization: Some(data),
        content_type: None,
        body: b"",
    }
    .collect();
});
