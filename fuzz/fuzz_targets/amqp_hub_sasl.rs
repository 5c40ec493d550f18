#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hubwire_core::testing::fuzz::amqp_hub_sasl(data));
