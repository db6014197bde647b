//! Any string as a callback URL to register: the parser must return, not
//! panic; whatever it accepts is stored exactly as given, re-parses, and is
//! matched by itself at login.
#![no_main]

use libfuzzer_sys::fuzz_target;
use perch_tenants::CallbackUrl;

fuzz_target!(|data: &str| {
    if let Ok(url) = CallbackUrl::parse(data) {
        assert_eq!(url.as_str(), data);
        assert!(CallbackUrl::parse(url.as_str()).is_ok());
        assert!(url.matches(data));
    }
});
