#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hubwire_transports::testing::ws_frames_server(data));
