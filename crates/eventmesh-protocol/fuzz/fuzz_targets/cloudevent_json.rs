//! Fuzzes the CloudEvents JSON event and batch decoders.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::cloudevent_json(data));
