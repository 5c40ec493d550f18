//! The protocol header (AMQP 1.0 part 2 §2.2, "Version Negotiation"): the 8 bytes
//! `"AMQP" id major minor revision` each peer sends before anything else, once per
//! layer (part 5 §5.1): a SASL layer (id 3) is followed by a second header for AMQP
//! itself (id 0). IoT Hub's Node and .NET SDKs send the plain AMQP header and
//! authenticate later by CBS; the C SDK opens with SASL (spec file §5.1).

use bytes::{Buf, BufMut, BytesMut};

/// Length of a protocol header, bytes (§2.2, figure 2.11).
pub const PROTOCOL_HEADER_LEN: usize = 8;

/// Every protocol header starts with these four ASCII bytes (§2.2).
const MAGIC: &[u8; 4] = b"AMQP";

/// The protocol id, byte 4 of the header: which layer the bytes after it speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProtocolId {
    /// 0: AMQP frames follow (§2.2).
    Amqp = 0,
    /// 2: a TLS handshake follows (part 5 §5.2.1). IoT Hub runs TLS beneath AMQP
    /// from the first byte instead (port 5671, spec file §1), so hubwire answers this
    /// id with another.
    Tls = 2,
    /// 3: SASL frames follow (part 5 §5.3.2).
    Sasl = 3,
}

impl ProtocolId {
    /// The id for its byte; `None` for ids the standard does not assign (1, 4–255).
    pub const fn from_u8(id: u8) -> Option<Self> {
        match id {
            0 => Some(ProtocolId::Amqp),
            2 => Some(ProtocolId::Tls),
            3 => Some(ProtocolId::Sasl),
            _ => None,
        }
    }
}

/// An 8-byte protocol header (§2.2, figure 2.11).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProtocolHeader {
    /// The layer that follows.
    pub id: ProtocolId,
    /// Major version; 1 for AMQP 1.0.
    pub major: u8,
    /// Minor version; 0 for AMQP 1.0.
    pub minor: u8,
    /// Revision; 0 for AMQP 1.0.
    pub revision: u8,
}

impl ProtocolHeader {
    /// `41 4D 51 50 00 01 00 00`: AMQP 1.0.0 without a SASL layer, what the Node and
    /// .NET SDKs send (spec file §5.1).
    pub const AMQP: Self = Self::v1_0_0(ProtocolId::Amqp);
    /// `41 4D 51 50 02 01 00 00`: TLS negotiated in band (part 5 §5.2.1).
    pub const TLS: Self = Self::v1_0_0(ProtocolId::Tls);
    /// `41 4D 51 50 03 01 00 00`: a SASL layer first (part 5 §5.3.2), what the C SDK
    /// sends (spec file §5.1).
    pub const SASL: Self = Self::v1_0_0(ProtocolId::Sasl);

    /// The header of `id` at version 1.0.0, the only version hubwire speaks.
    pub const fn v1_0_0(id: ProtocolId) -> Self {
        ProtocolHeader { id, major: 1, minor: 0, revision: 0 }
    }

    /// Reads a protocol header from the front of `buf` and removes its 8 bytes.
    ///
    /// `Ok(None)`: the bytes so far start a header; nothing was consumed.
    ///
    /// Errors, as soon as the first byte that proves it arrives (nothing is
    /// consumed): the bytes are not a protocol header. A server answers with a header
    /// it supports and closes (§2.2; see [`negotiate`]), a client closes.
    pub fn decode(buf: &mut BytesMut) -> Result<Option<Self>, ProtocolHeaderError> {
        let magic_len = buf.len().min(MAGIC.len());
        if buf.get(..magic_len) != MAGIC.get(..magic_len) {
            return Err(ProtocolHeaderError::NotAmqp);
        }
        let Some(&[_, _, _, _, id, major, minor, revision]) = buf.first_chunk() else {
            return match buf.get(MAGIC.len()) {
                Some(&id) if ProtocolId::from_u8(id).is_none() => {
                    Err(ProtocolHeaderError::UnknownProtocolId { id })
                }
                _ => Ok(None),
            };
        };
        let id = ProtocolId::from_u8(id).ok_or(ProtocolHeaderError::UnknownProtocolId { id })?;
        buf.advance(PROTOCOL_HEADER_LEN);
        Ok(Some(ProtocolHeader { id, major, minor, revision }))
    }

    /// Appends the header's 8 bytes to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(PROTOCOL_HEADER_LEN);
        out.put_slice(MAGIC);
        out.put_slice(&[self.id as u8, self.major, self.minor, self.revision]);
    }

    const fn is_v1_0_0(&self) -> bool {
        self.major == 1 && self.minor == 0 && self.revision == 0
    }
}

/// Why bytes are not a protocol header. Either way a server answers with a header it
/// supports and closes the socket (§2.2: "If the server cannot parse the protocol
/// header, the server MUST send a valid protocol header with a supported protocol
/// version and then close the socket").
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolHeaderError {
    /// The first bytes are not `AMQP` (§2.2): another protocol, such as MQTT or
    /// HTTP, or garbage.
    #[error("the bytes do not start with \"AMQP\" (AMQP 1.0 §2.2)")]
    NotAmqp,
    /// The protocol id is none of 0, 2 and 3 (§2.2, part 5 §5.1). AMQP 0-10 sends 1.
    #[error("protocol id {id} is not AMQP (0), TLS (2) or SASL (3) (AMQP 1.0 §2.2)")]
    UnknownProtocolId {
        /// Byte 4 of the header.
        id: u8,
    },
}

/// What a server answers to a client's protocol header (§2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Negotiation {
    /// The header to send back.
    pub reply: ProtocolHeader,
    /// Close the socket after sending [`reply`](Self::reply): the client asked for a
    /// layer or version this server does not speak. When false the reply equals the
    /// request and the layer proceeds.
    pub close: bool,
}

/// The server's side of version negotiation (§2.2): the header to answer
/// `received` with, given the layers this server accepts at this point of the
/// connection, `supported`, in order of preference (say `[Sasl, Amqp]` on a fresh
/// connection, `[Amqp]` after a SASL outcome).
///
/// `received` is `None` when the bytes were not a protocol header
/// ([`ProtocolHeader::decode`]'s error).
///
/// - A supported id at version 1.0.0: echo it and proceed ("If the requested protocol
///   version is supported, the server MUST send its own protocol header with the
///   requested version").
/// - A supported id at another version: the same id at 1.0.0, then close. 1.0.0 is
///   the only version hubwire speaks, so it is both "the highest supported version
///   that is less than or equal to the requested version" and, failing that, "the
///   highest supported version".
/// - An id not in `supported`, or no header at all: the first of `supported` at 1.0.0,
///   then close ("the server MUST send a protocol header with an acceptable protocol
///   id (and version) and then close the socket. It MAY choose any protocol id").
///   With `supported` empty, the AMQP header.
///
/// A client does not negotiate: it closes unless the server's header equals its own
/// ("If the incoming and outgoing protocol headers do not match, both peers MUST
/// close their outgoing stream", §2.2).
pub fn negotiate(received: Option<ProtocolHeader>, supported: &[ProtocolId]) -> Negotiation {
    let preferred = supported.first().copied().unwrap_or(ProtocolId::Amqp);
    match received {
        Some(header) if supported.contains(&header.id) => {
            Negotiation { reply: ProtocolHeader::v1_0_0(header.id), close: !header.is_v1_0_0() }
        }
        _ => Negotiation { reply: ProtocolHeader::v1_0_0(preferred), close: true },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    /// `"AMQP"`, the first four bytes of every header.
    const A: u8 = 0x41;
    const M: u8 = 0x4D;
    const Q: u8 = 0x51;
    const P: u8 = 0x50;

    fn decode(bytes: &[u8]) -> Result<Option<ProtocolHeader>, ProtocolHeaderError> {
        ProtocolHeader::decode(&mut BytesMut::from(bytes))
    }

    fn encoded(header: ProtocolHeader) -> Vec<u8> {
        let mut out = BytesMut::new();
        header.encode(&mut out);
        out.to_vec()
    }

    #[test]
    fn s2_2_amqp_header_layout() {
        let bytes = [
            A, M, Q, P,    // "AMQP"
            0x00, // protocol id 0: AMQP
            0x01, 0x00, 0x00, // version 1.0.0
        ];
        assert_eq!(encoded(ProtocolHeader::AMQP), bytes);
        assert_eq!(decode(&bytes), Ok(Some(ProtocolHeader::AMQP)));
    }

    /// Spec file §5.1: the header of the SASL layer the C SDK opens with.
    #[test]
    fn s5_3_2_sasl_header_layout() {
        let bytes = [
            A, M, Q, P,    // "AMQP"
            0x03, // protocol id 3: SASL
            0x01, 0x00, 0x00, // version 1.0.0
        ];
        assert_eq!(encoded(ProtocolHeader::SASL), bytes);
        assert_eq!(decode(&bytes), Ok(Some(ProtocolHeader::SASL)));
    }

    #[test]
    fn s5_2_1_tls_header_layout() {
        let bytes = [
            A, M, Q, P,    // "AMQP"
            0x02, // protocol id 2: TLS
            0x01, 0x00, 0x00, // version 1.0.0
        ];
        assert_eq!(encoded(ProtocolHeader::TLS), bytes);
        assert_eq!(decode(&bytes), Ok(Some(ProtocolHeader::TLS)));
    }

    /// The header is consumed and the frames pipelined after it stay (§2.4.2).
    #[test]
    fn s2_2_decode_consumes_only_the_header() {
        let mut buf = BytesMut::from(&b"AMQP\x00\x01\x00\x00\x00\x00\x00\x08"[..]);
        assert_eq!(ProtocolHeader::decode(&mut buf), Ok(Some(ProtocolHeader::AMQP)));
        assert_eq!(&buf[..], [0x00, 0x00, 0x00, 0x08]);
    }

    #[test]
    fn s2_2_every_prefix_of_a_header_is_incomplete_and_consumes_nothing() {
        let bytes = encoded(ProtocolHeader::SASL);
        for len in 0..PROTOCOL_HEADER_LEN {
            let mut buf = BytesMut::from(&bytes[..len]);
            assert_eq!(ProtocolHeader::decode(&mut buf), Ok(None), "{len} bytes");
            assert_eq!(buf.len(), len);
        }
    }

    /// An MQTT CONNECT or an HTTP request is refused at its first byte, not after
    /// eight.
    #[test]
    fn s2_2_other_protocols_are_refused_at_the_first_wrong_byte() {
        assert_eq!(decode(&[0x10]), Err(ProtocolHeaderError::NotAmqp)); // MQTT CONNECT
        assert_eq!(decode(b"GET /"), Err(ProtocolHeaderError::NotAmqp));
        assert_eq!(decode(b"AMQ"), Ok(None));
        assert_eq!(decode(b"AMQX"), Err(ProtocolHeaderError::NotAmqp));
        assert_eq!(decode(b"amqp\x00\x01\x00\x00"), Err(ProtocolHeaderError::NotAmqp));
    }

    /// AMQP 0-10 opens with `AMQP 01 01 00 0A`: protocol id 1, which 1.0 does not
    /// assign. Refused as soon as byte 4 arrives.
    #[test]
    fn s2_2_unassigned_protocol_id_is_not_a_header() {
        let amqp_0_10 = [
            A, M, Q, P,    // "AMQP"
            0x01, // protocol id 1: unassigned in 1.0
            0x01, 0x00, 0x0A, // 0-10's class and version bytes
        ];
        assert_eq!(decode(&amqp_0_10[..5]), Err(ProtocolHeaderError::UnknownProtocolId { id: 1 }));
        assert_eq!(decode(&amqp_0_10), Err(ProtocolHeaderError::UnknownProtocolId { id: 1 }));
        assert_eq!(decode(b"AMQP\xFF"), Err(ProtocolHeaderError::UnknownProtocolId { id: 0xFF }));
    }

    #[test]
    fn s2_2_supported_header_is_echoed_and_the_layer_proceeds() {
        let both = [ProtocolId::Sasl, ProtocolId::Amqp];
        for header in [ProtocolHeader::AMQP, ProtocolHeader::SASL] {
            assert_eq!(negotiate(Some(header), &both), Negotiation { reply: header, close: false });
        }
    }

    /// Figure 2.13: a server that requires SASL answers a plain AMQP header with the
    /// SASL header and closes.
    #[test]
    fn s2_2_unacceptable_protocol_id_is_answered_with_the_preferred_one_and_closed() {
        assert_eq!(
            negotiate(Some(ProtocolHeader::AMQP), &[ProtocolId::Sasl]),
            Negotiation { reply: ProtocolHeader::SASL, close: true }
        );
        // After the SASL outcome only AMQP is acceptable (part 5 §5.1).
        assert_eq!(
            negotiate(Some(ProtocolHeader::SASL), &[ProtocolId::Amqp]),
            Negotiation { reply: ProtocolHeader::AMQP, close: true }
        );
        // hubwire runs TLS beneath AMQP, never in band.
        assert_eq!(
            negotiate(Some(ProtocolHeader::TLS), &[ProtocolId::Amqp, ProtocolId::Sasl]),
            Negotiation { reply: ProtocolHeader::AMQP, close: true }
        );
    }

    /// AMQP 0-9-1 opens with `AMQP 00 00 09 01`: protocol id 0 at version 0.9.1. The
    /// id is acceptable, the version is not: the answer is the only version hubwire
    /// speaks, then close.
    #[test]
    fn s2_2_unsupported_version_is_answered_with_1_0_0_and_closed() {
        let amqp_0_9_1 = [
            A, M, Q, P,    // "AMQP"
            0x00, // protocol id 0
            0x00, 0x09, 0x01, // version 0.9.1
        ];
        let Ok(Some(header)) = decode(&amqp_0_9_1) else {
            panic!("0-9-1's header parses as id 0, version 0.9.1");
        };
        assert_eq!(
            negotiate(Some(header), &[ProtocolId::Amqp]),
            Negotiation { reply: ProtocolHeader::AMQP, close: true }
        );
        let newer = ProtocolHeader { id: ProtocolId::Sasl, major: 1, minor: 1, revision: 0 };
        assert_eq!(
            negotiate(Some(newer), &[ProtocolId::Amqp, ProtocolId::Sasl]),
            Negotiation { reply: ProtocolHeader::SASL, close: true }
        );
    }

    #[test]
    fn s2_2_unparseable_header_is_answered_with_a_valid_one_and_closed() {
        assert_eq!(
            negotiate(None, &[ProtocolId::Sasl, ProtocolId::Amqp]),
            Negotiation { reply: ProtocolHeader::SASL, close: true }
        );
        assert_eq!(negotiate(None, &[]), Negotiation { reply: ProtocolHeader::AMQP, close: true });
    }

    fn any_id() -> impl Strategy<Value = ProtocolId> {
        prop_oneof![Just(ProtocolId::Amqp), Just(ProtocolId::Tls), Just(ProtocolId::Sasl)]
    }

    fn any_header() -> impl Strategy<Value = ProtocolHeader> {
        (any_id(), any::<u8>(), any::<u8>(), any::<u8>())
            .prop_map(|(id, major, minor, revision)| ProtocolHeader { id, major, minor, revision })
    }

    proptest! {
        #[test]
        fn protocol_header_round_trips(header in any_header(), tail in proptest::collection::vec(any::<u8>(), 0..16)) {
            let mut buf = BytesMut::new();
            header.encode(&mut buf);
            prop_assert_eq!(buf.len(), PROTOCOL_HEADER_LEN);
            buf.extend_from_slice(&tail);
            prop_assert_eq!(ProtocolHeader::decode(&mut buf), Ok(Some(header)));
            prop_assert_eq!(&buf[..], &tail[..]);
        }

        /// Whatever a client sends, the reply is a valid 1.0.0 header of a layer the
        /// server accepts, and the server proceeds only on an exact echo.
        #[test]
        fn negotiation_replies_with_a_supported_header(
            bytes in proptest::collection::vec(any::<u8>(), 0..12),
            supported in proptest::collection::vec(any_id(), 1..4),
        ) {
            let received = ProtocolHeader::decode(&mut BytesMut::from(&bytes[..])).ok().flatten();
            let answer = negotiate(received, &supported);
            prop_assert!(supported.contains(&answer.reply.id));
            prop_assert!(answer.reply.is_v1_0_0());
            prop_assert_eq!(answer.close, received != Some(answer.reply));
        }
    }
}
