//! Sign and verify cost against the floor, a bare HMAC-SHA1 of the same
//! base string. Request: Twitter's "Creating a signature" example.

mod common;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use perch_oauth1::authorization_header;

fn benches(c: &mut Criterion) {
    let credentials = common::credentials();
    let request = common::request();
    let header = authorization_header(&request, &credentials).unwrap_or_default();
    // Benchmark the success path: the header must verify.
    assert!(common::collect_and_verify(&header, &credentials));

    c.bench_function("sign (HMAC-SHA1, Twitter example)", |b| {
        b.iter(|| authorization_header(black_box(&request), black_box(&credentials)))
    });

    c.bench_function("verify (collect from header + verify)", |b| {
        b.iter(|| common::collect_and_verify(&header, &credentials))
    });

    // The two halves of the line above, to show where its time goes.
    c.bench_function("collect only (parse the request)", |b| {
        b.iter(|| common::incoming(&header).collect().is_ok())
    });
    let collected = common::incoming(&header).collect();
    assert!(collected.is_ok());
    if let Ok(collected) = collected {
        c.bench_function("verify only (parameters collected)", |b| {
            b.iter(|| common::verify_collected(&collected, &credentials))
        });
    }

    c.bench_function("raw HMAC-SHA1 of the base string (floor)", |b| {
        b.iter(common::raw_hmac)
    });
}

criterion_group!(sign, benches);
criterion_main!(sign);
