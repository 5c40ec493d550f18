//! The hub serves AMQP on its three AMQP transports — TLS, WebSocket (subprotocol
//! `AMQPWSB10` on the 443 listener) and plain TCP — through the same driver as
//! MQTT: an AMQP protocol header sent through each transport's [`Stack`] over a
//! real socket is answered with the hub's own (AMQP core §2.2).
//!
//! The full AMQP conversation with a real client is conformance/tests/interop_proton.rs.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hubwire_blocking::{Threads, Transport};
use hubwire_runtime::scenarios::TestHub;
use hubwire_transports::Stack;
use hubwire_transports::tls::{self, Trust};

/// AMQP core §2.2: "AMQP", protocol id 0 (no security layer), version 1.0.0.
const AMQP_HEADER: &[u8] = b"AMQP\x00\x01\x00\x00";

const WAIT: Duration = Duration::from_secs(5);

/// Sends `AMQP_HEADER` over `transport` to `hub` and returns the first plain bytes
/// that come back (at least as many as the header), or panics at the deadline.
fn header_answer(hub: &TestHub<Threads>, transport: Transport) -> Vec<u8> {
    let address = hub.addr(transport);
    let trust = Trust { platform_roots: false, ca_files: vec![hub.ca.clone()] };
    let config = match tls::client_config(&trust) {
        Ok(config) => config,
        Err(e) => panic!("{e}"),
    };
    let stack = Stack::client(transport, "127.0.0.1", address.port(), Some(config), [7; 16]);
    let mut stack = match stack {
        Ok(stack) => stack,
        Err(e) => panic!("{transport}: {e}"),
    };
    let mut socket = match TcpStream::connect(address) {
        Ok(socket) => socket,
        Err(e) => panic!("{transport}: cannot connect to {address}: {e}"),
    };
    if let Err(e) = socket.set_read_timeout(Some(Duration::from_millis(100))) {
        panic!("{e}");
    }
    // Held by the stack until its handshakes are done.
    if let Err(e) = stack.send(Bytes::from_static(AMQP_HEADER)) {
        panic!("{transport}: {e}");
    }
    let deadline = Instant::now() + WAIT;
    let mut answer = Vec::new();
    let mut buffer = [0; 4096];
    while answer.len() < AMQP_HEADER.len() {
        assert!(Instant::now() < deadline, "{transport}: no answer within {WAIT:?}: {answer:?}");
        while let Some(bytes) = stack.poll_output() {
            if let Err(e) = socket.write_all(&bytes) {
                panic!("{transport}: {e}");
            }
        }
        match socket.read(&mut buffer) {
            Ok(0) => panic!("{transport}: the hub closed the connection"),
            Ok(n) => {
                if let Err(e) = stack.handle_input(&buffer[..n]) {
                    panic!("{transport}: {e}");
                }
                answer.extend_from_slice(&stack.take_plain());
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("{transport}: {e}"),
        }
    }
    answer
}

#[test]
fn every_amqp_transport_reaches_the_hubs_amqp_session() {
    let hub = TestHub::<Threads>::start(&["d1"]);
    for transport in [Transport::Amqp, Transport::AmqpWs, Transport::AmqpTcp] {
        let answer = header_answer(&hub, transport);
        assert_eq!(&answer[..AMQP_HEADER.len()], AMQP_HEADER, "{transport}");
    }
}
