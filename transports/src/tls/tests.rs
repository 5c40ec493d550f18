//! A client and a server [`Tls`] talking in memory: handshakes, data, refusals, closes.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::BytesMut;
use proptest::prelude::*;
use rustls::{AlertDescription, ClientConfig};

use super::config::provider;
use super::local_ca::CertificateAuthority;
use super::testing::{Pair, TempDir, YEAR, client_trusting, roots_of, server_for, server_with};
use super::{Tls, TlsError, Trust, TrustedRoots, client_config, load_certificate};

fn ca() -> CertificateAuthority {
    CertificateAuthority::new().expect("CA")
}

/// A connected pair: a hub certificate for localhost and 127.0.0.1, a client trusting its CA.
fn connected(server_name: &str) -> Pair {
    let ca = ca();
    let mut pair =
        Pair::new(client_trusting(&ca), server_name, server_for(&ca, &["localhost", "127.0.0.1"]));
    pair.run();
    assert!(pair.connected(), "{:?} {:?}", pair.client_error, pair.server_error);
    pair
}

/// A client configuration like the Python device SDK's: TLS 1.2 only (spec file §1, peers.md).
fn tls12_only_trusting(ca: &CertificateAuthority) -> Arc<ClientConfig> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .expect("TLS 1.2")
        .with_root_certificates(roots_of(ca))
        .with_no_client_auth();
    Arc::new(config)
}

/// The first bytes of an MQTT 3.1.1 CONNECT, what a device without TLS sends first.
const MQTT_CONNECT: &[u8] = &[
    0x10, // CONNECT
    0x1a, // remaining length 26
    0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name
    0x04, // protocol level 4 (3.1.1)
    0x02, // connect flags: clean session
    0x00, 0x3c, // keep-alive 60 s
    0x00, 0x0e, b'd', b'e', b'v', b'i', b'c', b'e', b'1', b'.', b'e', b'x', b'a', b'm', b'p',
    b'l', // client id length 14, "device1.exampl" (cut short)
];

#[test]
fn handshake_then_data_both_ways() {
    let mut pair = connected("localhost");
    assert_eq!(pair.client.protocol_version(), Some("TLSv1.3"));
    assert_eq!(pair.server.protocol_version(), Some("TLSv1.3"));
    assert_eq!(pair.server.server_name(), Some("localhost"));
    assert_eq!(pair.client.server_name(), None);

    pair.client.send(MQTT_CONNECT).expect("send");
    pair.run();
    assert_eq!(&pair.server_plain[..], MQTT_CONNECT);

    // More than one 16 KiB record each way.
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    pair.server.send(&big).expect("send");
    pair.client.send(&big).expect("send");
    pair.run();
    assert_eq!(&pair.client_plain[..], &big[..]);
    assert_eq!(&pair.server_plain[MQTT_CONNECT.len()..], &big[..]);
    assert!(!pair.client.is_closed() && !pair.server.is_closed());
}

#[test]
fn data_sent_during_the_handshake_is_held_until_it_completes() {
    let ca = ca();
    let mut pair = Pair::new(client_trusting(&ca), "localhost", server_for(&ca, &["localhost"]));
    pair.client.send(b"early").expect("send");
    assert!(pair.client.is_handshaking());
    pair.run();
    assert!(pair.connected());
    assert_eq!(&pair.server_plain[..], b"early");
}

#[test]
fn tls12_only_client_like_the_python_sdk_connects() {
    let ca = ca();
    let mut pair =
        Pair::new(tls12_only_trusting(&ca), "localhost", server_for(&ca, &["localhost"]));
    pair.run();
    assert!(pair.connected(), "{:?} {:?}", pair.client_error, pair.server_error);
    assert_eq!(pair.client.protocol_version(), Some("TLSv1.2"));
    assert_eq!(pair.server.protocol_version(), Some("TLSv1.2"));
    pair.client.send(b"over 1.2").expect("send");
    pair.run();
    assert_eq!(&pair.server_plain[..], b"over 1.2");
}

#[test]
fn untrusted_ca_is_named_and_the_server_sees_the_alert() {
    let hub_ca = ca();
    let other_ca = ca();
    let mut pair =
        Pair::new(client_trusting(&other_ca), "localhost", server_for(&hub_ca, &["localhost"]));
    pair.run();
    let client_error = pair.client_error.expect("client refuses");
    assert!(matches!(client_error, TlsError::UntrustedIssuer), "{client_error:?}");
    assert!(client_error.to_string().contains("not signed by a trusted CA"));
    assert!(client_error.to_string().contains("--ca FILE"));
    let server_error = pair.server_error.expect("server told");
    assert!(
        matches!(server_error, TlsError::AlertReceived { alert: AlertDescription::UnknownCA }),
        "{server_error:?}"
    );
    assert!(server_error.to_string().contains("does not trust our certificate"));
    assert!(pair.client.is_closed() && pair.server.is_closed());
}

#[test]
fn expired_server_certificate_is_refused_with_its_date() {
    let ca = ca();
    let now = SystemTime::now();
    let mut pair = Pair::new(
        client_trusting(&ca),
        "localhost",
        server_with(&ca, &["localhost"], now - 2 * YEAR, now - YEAR),
    );
    pair.run();
    let err = pair.client_error.expect("client refuses");
    assert!(matches!(err, TlsError::Expired { not_after: Some(_), now: Some(_) }), "{err:?}");
    assert!(err.to_string().starts_with("the server's certificate has expired (not after "));
    assert!(pair.server_error.is_some());
}

#[test]
fn not_yet_valid_server_certificate_is_refused() {
    let ca = ca();
    let now = SystemTime::now();
    let mut pair = Pair::new(
        client_trusting(&ca),
        "localhost",
        server_with(&ca, &["localhost"], now + YEAR, now + 2 * YEAR),
    );
    pair.run();
    let err = pair.client_error.expect("client refuses");
    assert!(matches!(err, TlsError::NotYetValid { .. }), "{err:?}");
    assert!(err.to_string().contains("check the clocks"));
}

#[test]
fn name_mismatch_says_the_name_the_certificate_must_list() {
    let ca = ca();
    let mut pair = Pair::new(
        client_trusting(&ca),
        "hub.example",
        server_for(&ca, &["localhost", "127.0.0.1"]),
    );
    pair.run();
    let err = pair.client_error.expect("client refuses");
    let TlsError::NameMismatch { name, presented } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(name, "hub.example");
    assert!(presented.iter().any(|n| n == "localhost"), "{presented:?}");
    let message = err.to_string();
    assert!(message.contains("\"hub.example\""), "{message}");
    assert!(message.contains("must list"), "{message}");
    assert!(message.ends_with("(it lists localhost, 127.0.0.1)"), "{message}");
}

#[test]
fn ip_address_is_checked_against_ip_sans_and_not_sent_as_sni() {
    let mut pair = connected("127.0.0.1");
    assert_eq!(pair.server.server_name(), None);
    pair.client.send(b"hello").expect("send");
    pair.run();
    assert_eq!(&pair.server_plain[..], b"hello");

    // An address the certificate does not list.
    let ca = ca();
    let mut pair =
        Pair::new(client_trusting(&ca), "127.0.0.2", server_for(&ca, &["localhost", "127.0.0.1"]));
    pair.run();
    assert!(
        matches!(&pair.client_error, Some(TlsError::NameMismatch { name, .. }) if name == "127.0.0.2"),
        "{:?}",
        pair.client_error
    );
}

#[test]
fn ipv6_literal_in_brackets_is_an_ip_address() {
    let ca = ca();
    let mut pair = Pair::new(client_trusting(&ca), "[::1]", server_for(&ca, &["localhost", "::1"]));
    pair.run();
    assert!(pair.connected(), "{:?}", pair.client_error);
    assert_eq!(pair.server.server_name(), None);
}

#[test]
fn unknown_sni_gets_the_one_certificate() {
    let ca = ca();
    let mut pair =
        Pair::new(client_trusting(&ca), "elsewhere.example", server_for(&ca, &["localhost"]));
    pair.run();
    // The server accepted the name and answered with its certificate, which the client
    // then checked against the name it asked for.
    assert_eq!(pair.server.server_name(), Some("elsewhere.example"));
    assert!(
        matches!(&pair.client_error, Some(TlsError::NameMismatch { presented, .. }) if presented.iter().any(|n| n == "localhost")),
        "{:?}",
        pair.client_error
    );
    assert!(matches!(pair.server_error, Some(TlsError::AlertReceived { .. })));
}

#[test]
fn plain_mqtt_on_the_tls_port_is_not_tls() {
    let ca = ca();
    let mut server = Tls::server(server_for(&ca, &["localhost"])).expect("server");
    let mut plain = BytesMut::new();
    let err = server.handle_input(MQTT_CONNECT, &mut plain).expect_err("not TLS");
    let TlsError::NotTls { first_bytes } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(&first_bytes[..], &MQTT_CONNECT[..16]);
    assert!(err.to_string().starts_with("not TLS: the peer sent 10 1a 00 04 4d 51 54 54"));
    assert!(err.to_string().ends_with("plain TCP on a TLS port?"));
    assert!(server.is_closed());
    assert!(plain.is_empty());
    // An alert record (content type 21) waits to be sent.
    let alert = server.poll_output().expect("alert queued");
    assert_eq!(alert.first(), Some(&0x15));
    // Later input is discarded, not an error again.
    server.handle_input(MQTT_CONNECT, &mut plain).expect("discarded");
    assert!(matches!(server.send(b"x"), Err(TlsError::Closed)));
}

#[test]
fn plain_mqtt_arriving_a_byte_at_a_time_is_not_tls() {
    let ca = ca();
    let mut server = Tls::server(server_for(&ca, &["localhost"])).expect("server");
    let mut plain = BytesMut::new();
    let mut error = None;
    for byte in MQTT_CONNECT {
        if let Err(e) = server.handle_input(std::slice::from_ref(byte), &mut plain) {
            error.get_or_insert(e);
        }
    }
    assert!(matches!(error, Some(TlsError::NotTls { .. })), "{error:?}");
    assert!(server.is_closed());
}

#[test]
fn client_answered_in_plain_http_is_not_tls() {
    let ca = ca();
    let mut client = Tls::client(client_trusting(&ca), "localhost").expect("client");
    let hello = client.poll_output().expect("ClientHello");
    assert_eq!(hello.first(), Some(&0x16));
    let mut plain = BytesMut::new();
    let err =
        client.handle_input(b"HTTP/1.1 400 Bad Request\r\n\r\n", &mut plain).expect_err("not TLS");
    assert!(matches!(err, TlsError::NotTls { .. }), "{err:?}");
    assert!(err.to_string().contains("(\"HTTP/1.1 400 Bad\")"), "{err}");
}

#[test]
fn corrupted_record_after_the_handshake_is_a_protocol_error() {
    let mut pair = connected("localhost");
    pair.client.send(b"telemetry").expect("send");
    let mut record = pair.client.poll_output().expect("record").to_vec();
    let last = record.len() - 1;
    record[last] ^= 0x01; // break the AEAD tag
    let err = pair.server.handle_input(&record, &mut pair.server_plain).expect_err("refused");
    assert!(matches!(err, TlsError::Protocol(rustls::Error::DecryptError)), "{err:?}");
    assert!(pair.server.is_closed());
    assert!(pair.server.poll_output().is_some(), "bad_record_mac alert queued");
}

#[test]
fn client_close_notify_reaches_the_server() {
    let mut pair = connected("localhost");
    pair.client.send(b"last words").expect("send");
    pair.client.close();
    assert!(matches!(pair.client.send(b"more"), Err(TlsError::Closed)));
    pair.run();
    assert_eq!(&pair.server_plain[..], b"last words");
    assert!(pair.server.is_closed());
    assert!(pair.server_error.is_none());
    assert!(!pair.client.is_closed(), "the server has not closed its side yet");
    // TLS 1.3 lets the server's direction go on until it closes too.
    pair.server.send(b"reply").expect("send");
    pair.server.close();
    pair.run();
    assert_eq!(&pair.client_plain[..], b"reply");
    assert!(pair.client.is_closed());
    assert!(pair.client_error.is_none());
}

#[test]
fn server_close_notify_reaches_the_client_and_later_bytes_are_discarded() {
    let mut pair = connected("localhost");
    pair.server.close();
    let mut bytes = pair.server.poll_output().expect("close_notify").to_vec();
    bytes.extend_from_slice(b"trailing garbage after close_notify");
    pair.client.handle_input(&bytes, &mut pair.client_plain).expect("clean close");
    assert!(pair.client.is_closed());
    assert!(pair.client_plain.is_empty());
}

#[test]
fn server_name_that_is_no_name_is_refused() {
    let ca = ca();
    let err = Tls::client(client_trusting(&ca), "not a host!").expect_err("refused");
    assert!(matches!(err, TlsError::InvalidServerName(_)), "{err:?}");
}

#[test]
fn trust_from_a_ca_file_connects() {
    let dir = TempDir::new("ca-file");
    std::fs::create_dir_all(dir.path()).expect("dir");
    let ca = ca();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).expect("write");
    let trust = Trust { platform_roots: false, ca_files: vec![ca_file] };
    let roots = TrustedRoots::load(&trust).expect("roots");
    assert_eq!((roots.platform, roots.from_files), (0, 1));
    let mut pair = Pair::new(
        client_config(&trust).expect("config"),
        "localhost",
        server_for(&ca, &["localhost"]),
    );
    pair.run();
    assert!(pair.connected(), "{:?}", pair.client_error);
}

#[test]
fn unusable_ca_files_are_named() {
    let dir = TempDir::new("bad-ca");
    std::fs::create_dir_all(dir.path()).expect("dir");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").expect("write");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
        .expect("write");
    let missing = dir.path().join("missing.pem");
    for (path, expect) in [
        (&empty, "holds no PEM certificate"),
        (&garbage, "certificate 1 is not usable"),
        (&missing, "cannot read it"),
    ] {
        let err = client_config(&Trust { platform_roots: false, ca_files: vec![path.clone()] })
            .expect_err("refused");
        let message = err.to_string();
        assert!(matches!(&err, TlsError::CaFile { path: p, .. } if p == path), "{err:?}");
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains(expect), "{message}");
    }
}

#[test]
fn platform_roots_and_ca_files_add_up() {
    let dir = TempDir::new("platform");
    std::fs::create_dir_all(dir.path()).expect("dir");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca().cert_pem()).expect("write");
    let roots = TrustedRoots::load(&Trust { platform_roots: true, ca_files: vec![ca_file] })
        .expect("roots");
    assert_eq!(roots.from_files, 1);
    assert_eq!(roots.store.len(), roots.platform + roots.from_files);
}

#[test]
fn nothing_to_trust_is_an_error() {
    let err = client_config(&Trust::default()).expect_err("no roots");
    assert!(matches!(err, TlsError::NoTrustedRoots), "{err:?}");
    assert!(err.to_string().contains("--ca FILE"));
}

#[test]
fn certificate_and_key_files_load_and_mismatches_are_named() {
    let dir = TempDir::new("load");
    std::fs::create_dir_all(dir.path()).expect("dir");
    let ca = ca();
    let hub = dir.path().join("hub.pem");
    let hub_key = dir.path().join("hub-key.pem");
    let other_key = dir.path().join("other-key.pem");
    ca.save(&hub, &hub_key).expect("save");
    let other = CertificateAuthority::new().expect("CA");
    other.save(&dir.path().join("other.pem"), &other_key).expect("save");

    let (chain, _key) = load_certificate(&hub, &hub_key).expect("loads");
    assert_eq!(&chain[0], ca.cert_der());

    let err = load_certificate(&hub, &other_key).expect_err("mismatch");
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err:?}");
    let err = load_certificate(&hub, &hub).expect_err("no key in a certificate file");
    assert!(matches!(&err, TlsError::KeyFile { path, .. } if *path == hub), "{err:?}");
    let err = load_certificate(&hub_key, &hub_key).expect_err("no certificate in a key file");
    assert!(matches!(&err, TlsError::CertificateFile { path, .. } if *path == hub_key), "{err:?}");
}

#[test]
fn any_bytes_to_a_fresh_server_or_client_never_panic() {
    let ca = ca();
    let server_config = server_for(&ca, &["localhost"]);
    let client_config = client_trusting(&ca);
    proptest!(ProptestConfig::with_cases(256), |(bytes in proptest::collection::vec(any::<u8>(), 0..512), tls_header in any::<bool>())| {
        let mut input = if tls_header { vec![0x16, 0x03, 0x01] } else { Vec::new() };
        input.extend_from_slice(&bytes);
        let mut plain = BytesMut::new();
        let mut server = Tls::server(server_config.clone()).expect("server");
        let result = server.handle_input(&input, &mut plain);
        prop_assert_eq!(result.is_err(), server.is_closed());
        let _ = server.poll_output();
        let mut client = Tls::client(client_config.clone(), "localhost").expect("client");
        let _ = client.poll_output();
        let result = client.handle_input(&input, &mut plain);
        prop_assert_eq!(result.is_err(), client.is_closed());
        prop_assert!(plain.is_empty());
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// However the network cuts the bytes, the handshake completes and the data arrives.
    #[test]
    fn any_chunking_of_network_bytes_completes(
        chunks in proptest::collection::vec(1usize..300, 1..12),
        tls12 in any::<bool>(),
        message in proptest::collection::vec(any::<u8>(), 1..3000),
    ) {
        let ca = ca();
        let client = if tls12 { tls12_only_trusting(&ca) } else { client_trusting(&ca) };
        let mut pair = Pair::new(client, "localhost", server_for(&ca, &["localhost"]));
        pair.chunks = chunks;
        pair.client.send(&message).expect("send");
        pair.run();
        prop_assert!(pair.connected(), "{:?} {:?}", pair.client_error, pair.server_error);
        pair.server.send(&message).expect("send");
        pair.run();
        prop_assert_eq!(&pair.server_plain[..], &message[..]);
        prop_assert_eq!(&pair.client_plain[..], &message[..]);
    }
}

#[test]
fn record_longer_than_tls_allows_is_refused() {
    let ca = ca();
    let mut server = Tls::server(server_for(&ca, &["localhost"])).expect("server");
    let mut input = vec![
        0x16, // handshake
        0x03, 0x01, // legacy version
        0xff, 0xff, // length 65535, over 2^14 + 2048 (RFC 5246 §6.2.3)
    ];
    input.extend_from_slice(&[0u8; 100]);
    let err = server.handle_input(&input, &mut BytesMut::new()).expect_err("refused");
    assert!(
        matches!(
            err,
            TlsError::Protocol(rustls::Error::InvalidMessage(
                rustls::InvalidMessage::MessageTooLarge
            ))
        ),
        "{err:?}"
    );
    assert!(server.is_closed());
    assert!(server.poll_output().is_some(), "alert queued");
}

/// A ClientHello whose handshake header claims `length` bytes (24 bits), sent in full-size
/// records until the server refuses it; the error.
fn huge_client_hello(length: [u8; 3]) -> TlsError {
    let ca = ca();
    let mut server = Tls::server(server_for(&ca, &["localhost"])).expect("server");
    let mut plain = BytesMut::new();
    for i in 0..1100 {
        let mut record = vec![
            0x16, // handshake
            0x03, 0x03, // TLS 1.2
            0x40, 0x00, // length 16384
        ];
        if i == 0 {
            record.push(0x01); // ClientHello
            record.extend_from_slice(&length);
        }
        record.resize(5 + 16384, 0);
        if let Err(err) = server.handle_input(&record, &mut plain) {
            assert!(server.is_closed());
            return err;
        }
    }
    panic!("16 MiB accepted");
}

#[test]
fn handshake_message_over_64_kib_is_refused() {
    let err = huge_client_hello([0xff, 0xff, 0xff]);
    assert!(
        matches!(
            err,
            TlsError::Protocol(rustls::Error::InvalidMessage(
                rustls::InvalidMessage::HandshakePayloadTooLarge
            ))
        ),
        "{err:?}"
    );
    // Just under 64 KiB of message, but more than rustls buffers with its record headers.
    let err = huge_client_hello([0x00, 0xff, 0xf0]);
    assert!(matches!(err, TlsError::Oversized), "{err:?}");
}
