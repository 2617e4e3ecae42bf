//! Any path: reading the route and rebuilding the public URL must never panic.

#![no_main]

use byosms::webhook::{Route, public_url};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else { return };
    let _ = Route::from_path(path);
    let (raw_path, raw_query) = path.split_once('?').unwrap_or((path, ""));
    let _ = public_url(Some("https://sms.example.com/"), "https", "h", raw_path, raw_query);
    let _ = public_url(None, "https", "h", raw_path, raw_query);
});
