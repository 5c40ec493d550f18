//! SASL frames (OASIS AMQP 1.0 part 5 §5.3.3) and the PLAIN initial response
//! (RFC 4616) with IoT Hub's user names (spec file §5.1).

use alloc::string::String;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};

use crate::amqp::field::{Context, FieldType, Reader};
use crate::amqp::message::{FieldError, Section};
use crate::amqp::performative::condition;
use crate::amqp::types::{
    Array, Composite, DecodeError, Descriptor, EncodeError, Limits, PrimitiveType, Symbol, Value,
};
use crate::utf8::Utf8Bytes;

/// `ANONYMOUS`: IoT Hub then authenticates by CBS (spec file §5.1).
pub const ANONYMOUS: Symbol = Symbol::from_static("ANONYMOUS");
/// `PLAIN` (RFC 4616): user `<deviceId>@sas.<hub>`, password a SAS token.
pub const PLAIN: Symbol = Symbol::from_static("PLAIN");
/// `EXTERNAL`: identity from the TLS client certificate.
pub const EXTERNAL: Symbol = Symbol::from_static("EXTERNAL");
/// `MSSBCBS`: the C SDK's "authenticate later by CBS" (spec file §5.1).
pub const MSSBCBS: Symbol = Symbol::from_static("MSSBCBS");

/// The largest SASL frame hubwire accepts, header included, bytes: 64 KiB.
///
/// Part 5 §5.3.1 bounds SASL frames by MIN-MAX-FRAME-SIZE (512 bytes), but a PLAIN
/// `sasl-init` carrying an IoT Hub SAS token with a long resource URI can pass 512
/// bytes (TV-18's is 154 bytes of initial response alone), and IoT Edge's hub
/// accepts SASL frames of 65 536 bytes (spec file §5.1, EDGE `AmqpSettingsProvider`).
/// Receiving up to that size is lenient where the standard is strict; nothing larger
/// is buffered.
pub const SASL_MAX_FRAME_SIZE: u32 = 65_536;

/// §5.3.3.1 `amqp:sasl-mechanisms:list`.
pub const SASL_MECHANISMS: u64 = 0x40;
/// §5.3.3.2 `amqp:sasl-init:list`.
pub const SASL_INIT: u64 = 0x41;
/// §5.3.3.3 `amqp:sasl-challenge:list`.
pub const SASL_CHALLENGE: u64 = 0x42;
/// §5.3.3.4 `amqp:sasl-response:list`.
pub const SASL_RESPONSE: u64 = 0x43;
/// §5.3.3.5 `amqp:sasl-outcome:list`.
pub const SASL_OUTCOME: u64 = 0x44;

/// §5.3.3.6: the outcome of the exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaslCode {
    /// 0: authenticated.
    Ok,
    /// 1: bad credentials.
    Auth,
    /// 2: system error, unspecified whether permanent.
    Sys,
    /// 3: permanent system error.
    SysPerm,
    /// 4: transient system error.
    SysTemp,
}

impl SaslCode {
    /// The code's ubyte.
    pub const fn to_u8(self) -> u8 {
        self as u8
    }

    /// The code's name in §5.3.3.6, e.g. `sys-perm`.
    pub const fn name(self) -> &'static str {
        match self {
            SaslCode::Ok => "ok",
            SaslCode::Auth => "auth",
            SaslCode::Sys => "sys",
            SaslCode::SysPerm => "sys-perm",
            SaslCode::SysTemp => "sys-temp",
        }
    }

    /// The code of `n`; `None` above 4.
    pub const fn from_u8(n: u8) -> Option<SaslCode> {
        Some(match n {
            0 => SaslCode::Ok,
            1 => SaslCode::Auth,
            2 => SaslCode::Sys,
            3 => SaslCode::SysPerm,
            4 => SaslCode::SysTemp,
            _ => return None,
        })
    }
}

/// The body of a SASL frame (§5.3.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SaslFrame {
    /// §5.3.3.1: the server's mechanisms, in its order of preference (mandatory).
    Mechanisms(Vec<Symbol>),
    /// §5.3.3.2: the client's choice.
    Init {
        /// The mechanism chosen (mandatory).
        mechanism: Symbol,
        /// The mechanism's first message, e.g. PLAIN's `\0user\0password`.
        initial_response: Option<Bytes>,
        /// The host the client wants (virtual hosting).
        hostname: Option<Utf8Bytes>,
    },
    /// §5.3.3.3: a server challenge (mandatory).
    Challenge(Bytes),
    /// §5.3.3.4: the client's answer (mandatory).
    Response(Bytes),
    /// §5.3.3.5: the result.
    Outcome {
        /// The result (mandatory).
        code: SaslCode,
        /// Mechanism data sent with success.
        additional_data: Option<Bytes>,
    },
}

/// Why a SASL frame body is not one of §5.3.3.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SaslError {
    /// Not a composite value.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A descriptor other than 0x40–0x44 (§5.3.3).
    #[error("§5.3.3 {descriptor:?} is not a SASL frame")]
    UnknownDescriptor {
        /// The descriptor.
        descriptor: Descriptor,
    },
    /// A field's type is wrong, or a mandatory field is null.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// A sasl-outcome code above 4 (§5.3.3.6).
    #[error("§5.3.3.6 sasl-code {code} is not 0–4")]
    Code {
        /// The code.
        code: u8,
    },
}

impl SaslError {
    /// The error condition (part 2 §2.8.15) the connection reports for it: a wrong
    /// or missing field is `amqp:invalid-field`, anything else `amqp:decode-error`.
    pub fn condition(&self) -> Symbol {
        match self {
            SaslError::Field(_) | SaslError::Code { .. } => condition::INVALID_FIELD,
            SaslError::Decode(_) | SaslError::UnknownDescriptor { .. } => condition::DECODE_ERROR,
        }
    }
}

fn sasl_code(descriptor: &Descriptor) -> Option<u64> {
    match descriptor {
        Descriptor::Code(c @ SASL_MECHANISMS..=SASL_OUTCOME) => Some(*c),
        Descriptor::Code(_) => None,
        Descriptor::Symbol(s) => match s.as_str() {
            "amqp:sasl-mechanisms:list" => Some(SASL_MECHANISMS),
            "amqp:sasl-init:list" => Some(SASL_INIT),
            "amqp:sasl-challenge:list" => Some(SASL_CHALLENGE),
            "amqp:sasl-response:list" => Some(SASL_RESPONSE),
            "amqp:sasl-outcome:list" => Some(SASL_OUTCOME),
            _ => None,
        },
    }
}

impl SaslFrame {
    /// The frame's name in §5.3.3, e.g. `sasl-init`.
    pub const fn name(&self) -> &'static str {
        match self {
            SaslFrame::Mechanisms(_) => "sasl-mechanisms",
            SaslFrame::Init { .. } => "sasl-init",
            SaslFrame::Challenge(_) => "sasl-challenge",
            SaslFrame::Response(_) => "sasl-response",
            SaslFrame::Outcome { .. } => "sasl-outcome",
        }
    }

    /// Reads a SASL frame's body (the whole body: extra bytes are refused).
    ///
    /// # Errors
    ///
    /// [`SaslError`].
    pub fn decode(body: &Bytes, limits: &Limits) -> Result<SaslFrame, SaslError> {
        let (c, used) = Composite::decode(body, limits)?;
        if used != body.len() {
            return Err(
                DecodeError::NotComposite { found: "a composite followed by more bytes" }.into()
            );
        }
        let code = sasl_code(&c.descriptor)
            .ok_or_else(|| SaslError::UnknownDescriptor { descriptor: c.descriptor.clone() })?;
        let fields = c.into_fields();
        Ok(match code {
            SASL_MECHANISMS => {
                let mut r = Reader::from_fields(Section("5.3.3.1 sasl-mechanisms"), fields);
                let field = "sasl-server-mechanisms";
                // `multiple="true"`: one symbol, or an array of them (part 1 §1.4).
                let mechanisms = match r.value() {
                    Value::Symbol(s) => alloc::vec![s],
                    Value::Array(Array {
                        descriptor: None,
                        element: PrimitiveType::Symbol,
                        items,
                    }) => items.into_iter().filter_map(|v| Symbol::from_value(v).ok()).collect(),
                    Value::Null => return Err(r.context().missing(field, Symbol::TYPE).into()),
                    other => {
                        let found = other.type_name();
                        return Err(r.context().wrong_type(field, "symbol array", found).into());
                    }
                };
                SaslFrame::Mechanisms(mechanisms)
            }
            SASL_INIT => {
                let mut r = Reader::from_fields(Section("5.3.3.2 sasl-init"), fields);
                SaslFrame::Init {
                    mechanism: r.req("mechanism")?,
                    initial_response: r.opt("initial-response")?,
                    hostname: r.opt("hostname")?,
                }
            }
            SASL_CHALLENGE => {
                let mut r = Reader::from_fields(Section("5.3.3.3 sasl-challenge"), fields);
                SaslFrame::Challenge(r.req("challenge")?)
            }
            SASL_RESPONSE => {
                let mut r = Reader::from_fields(Section("5.3.3.4 sasl-response"), fields);
                SaslFrame::Response(r.req("response")?)
            }
            _ => {
                let mut r = Reader::from_fields(Section("5.3.3.5 sasl-outcome"), fields);
                let n = r.req("code")?;
                SaslFrame::Outcome {
                    code: SaslCode::from_u8(n).ok_or(SaslError::Code { code: n })?,
                    additional_data: r.opt("additional-data")?,
                }
            }
        })
    }

    /// Writes the frame body as its composite.
    ///
    /// # Errors
    ///
    /// As [`Composite::encode`].
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        let binary = |b: &Option<Bytes>| b.clone().map_or(Value::Null, Value::Binary);
        let (code, fields) = match self {
            SaslFrame::Mechanisms(m) => (
                SASL_MECHANISMS,
                alloc::vec![Value::Array(Array::new(
                    PrimitiveType::Symbol,
                    m.iter().cloned().map(Value::Symbol).collect(),
                ))],
            ),
            SaslFrame::Init { mechanism, initial_response, hostname } => (
                SASL_INIT,
                alloc::vec![
                    Value::Symbol(mechanism.clone()),
                    binary(initial_response),
                    hostname.clone().map_or(Value::Null, Value::String),
                ],
            ),
            SaslFrame::Challenge(b) => (SASL_CHALLENGE, alloc::vec![Value::Binary(b.clone())]),
            SaslFrame::Response(b) => (SASL_RESPONSE, alloc::vec![Value::Binary(b.clone())]),
            SaslFrame::Outcome { code, additional_data } => {
                (SASL_OUTCOME, alloc::vec![Value::Ubyte(code.to_u8()), binary(additional_data)])
            }
        };
        Composite::new(code, fields).encode(out)
    }
}

/// The PLAIN mechanism's message (RFC 4616 §2): `[authzid] NUL authcid NUL passwd`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlainResponse {
    /// The identity to act as; empty when the same as `authcid` (IoT Hub clients
    /// send none).
    pub authzid: String,
    /// The user name, e.g. `device1@sas.myhub`.
    pub authcid: String,
    /// The password: for IoT Hub a SAS token (spec file §5.1, TV-18).
    pub password: String,
}

/// Why bytes are not a PLAIN message (RFC 4616 §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlainError {
    /// Not three NUL-separated UTF-8 fields, or an empty authcid or password, or
    /// one longer than 255 bytes.
    #[error(
        "RFC 4616 §2 a PLAIN message is [authzid] NUL authcid NUL passwd, each 1–255 UTF-8 bytes"
    )]
    Malformed,
}

impl PlainResponse {
    /// Reads a sasl-init initial response.
    ///
    /// # Errors
    ///
    /// [`PlainError::Malformed`].
    pub fn parse(bytes: &[u8]) -> Result<PlainResponse, PlainError> {
        let text = core::str::from_utf8(bytes).map_err(|_| PlainError::Malformed)?;
        let mut parts = text.split('\0');
        let (Some(authzid), Some(authcid), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(PlainError::Malformed);
        };
        let ok = |s: &str, min: usize| (min..=255).contains(&s.len());
        if !ok(authzid, 0) || !ok(authcid, 1) || !ok(password, 1) {
            return Err(PlainError::Malformed);
        }
        Ok(PlainResponse {
            authzid: authzid.into(),
            authcid: authcid.into(),
            password: password.into(),
        })
    }

    /// Writes the message.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(
            self.authzid.len() + self.authcid.len() + self.password.len() + 2,
        );
        out.extend_from_slice(self.authzid.as_bytes());
        out.extend_from_slice(b"\0");
        out.extend_from_slice(self.authcid.as_bytes());
        out.extend_from_slice(b"\0");
        out.extend_from_slice(self.password.as_bytes());
        out.freeze()
    }
}

/// IoT Hub's PLAIN user name for a device: `<deviceId>[/modules/<moduleId>]@sas.<hub>`
/// (spec file §5.1), where `<hub>` is the hub's name, not its host name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SasUser {
    /// The device id.
    pub device_id: String,
    /// The module id, for a module.
    pub module_id: Option<String>,
    /// The hub name, e.g. `myhub`.
    pub hub_name: String,
}

impl SasUser {
    /// Reads a user name; `None` unless it has the form above with non-empty parts.
    /// The last `@` splits it, since device ids may contain `@`. A service policy's
    /// `<policy>@sas.root.<hub>` is not a device's and reads as `None`.
    pub fn parse(user: &str) -> Option<SasUser> {
        let (identity, host) = user.rsplit_once('@')?;
        let hub_name = host.strip_prefix("sas.")?;
        if hub_name.is_empty() || hub_name.starts_with("root.") {
            return None;
        }
        let (device_id, module_id) = match identity.split_once("/modules/") {
            Some((d, m)) => (d, Some(m)),
            None => (identity, None),
        };
        if device_id.is_empty() || module_id.is_some_and(str::is_empty) {
            return None;
        }
        Some(SasUser {
            device_id: device_id.into(),
            module_id: module_id.map(String::from),
            hub_name: hub_name.into(),
        })
    }
}

impl core::fmt::Display for SasUser {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.device_id)?;
        if let Some(m) = &self.module_id {
            write!(f, "/modules/{m}")?;
        }
        write!(f, "@sas.{}", self.hub_name)
    }
}

#[cfg(test)]
mod tests;
