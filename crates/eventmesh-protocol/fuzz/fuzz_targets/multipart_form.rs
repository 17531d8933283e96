//! Fuzzes the `multipart/form-data` decoder of the HTTP request-code protocol.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::multipart_form(data));
