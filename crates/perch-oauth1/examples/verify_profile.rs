//! Runs collect + verify on Twitter's "Creating a signature" request N
//! times (default 10 000), for instruction counting under
//! `valgrind --tool=callgrind`. Pass `raw` to run the raw HMAC-SHA1 floor
//! instead, and a number to change N.

#[path = "../benches/common/mod.rs"]
mod common;

use perch_oauth1::authorization_header;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let raw = args.iter().any(|a| a == "raw");
    let n: usize = args
        .iter()
        .filter_map(|a| a.parse().ok())
        .next()
        .unwrap_or(10_000);
    let credentials = common::credentials();
    let header = authorization_header(&common::request(), &credentials).unwrap_or_default();
    let ok = (0..n)
        .filter(|_| {
            if raw {
                common::raw_hmac()
            } else {
                common::collect_and_verify(&header, &credentials)
            }
        })
        .count();
    println!("{ok}/{n} ok");
}
