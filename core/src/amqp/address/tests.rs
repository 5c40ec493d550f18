//! Addresses as each SDK writes them, garbage, and the attach checks.

use proptest::prelude::*;

use super::*;

fn device1() -> Identity {
    Identity::device("device1")
}

fn module1() -> Identity {
    Identity { device_id: "device1".into(), module_id: Some("module1".into()) }
}

fn node(address: &str) -> NodeAddress {
    NodeAddress::parse(address).unwrap().node
}

#[test]
fn node_paths_of_each_spec_table_row() {
    for (address, expected) in [
        ("$cbs", NodeAddress::Cbs),
        ("/devices/device1/messages/events", NodeAddress::Events(device1())),
        ("/devices/device1/modules/module1/messages/events", NodeAddress::Events(module1())),
        ("/devices/device1/messages/devicebound", NodeAddress::C2d(device1())),
        ("/devices/device1/twin", NodeAddress::Twin(device1())),
        ("/devices/device1/modules/module1/twin", NodeAddress::Twin(module1())),
        ("/devices/device1/methods/devicebound", NodeAddress::Methods(device1())),
        ("/devices/device1/modules/module1/methods/devicebound", NodeAddress::Methods(module1())),
    ] {
        assert_eq!(
            NodeAddress::parse(address),
            Ok(ParsedAddress { host: None, node: expected.clone() })
        );
        assert_eq!(expected.path(), address);
    }
}

#[test]
fn absolute_addresses_give_their_host_without_the_port() {
    for (address, expected) in [
        // C SDK (spec file §5.3).
        (
            "amqps://myhub.azure-devices.net/devices/device1/messages/devicebound",
            NodeAddress::C2d(device1()),
        ),
        ("amqps://myhub.azure-devices.net/devices/device1/twin", NodeAddress::Twin(device1())),
        // DOC-METH.
        (
            "amqps://myhub.azure-devices.net:5671/devices/device1/methods/deviceBound",
            NodeAddress::Methods(device1()),
        ),
        ("AMQPS://myhub.azure-devices.net:5671/$cbs", NodeAddress::Cbs),
    ] {
        let parsed = NodeAddress::parse(address).unwrap();
        assert_eq!(parsed.host.as_deref(), Some("myhub.azure-devices.net"), "{address}");
        assert_eq!(parsed.node, expected, "{address}");
    }
    assert_eq!(
        NodeAddress::parse("amqps://[::1]:5671/devices/device1/twin").unwrap().host.as_deref(),
        Some("[::1]")
    );
}

#[test]
fn fixed_segments_match_in_any_case() {
    // EDGE's template spells `deviceBound`; Node `devicebound`.
    assert_eq!(node("/devices/device1/messages/deviceBound"), NodeAddress::C2d(device1()));
    assert_eq!(
        node("/Devices/device1/Modules/module1/Messages/EVENTS"),
        NodeAddress::Events(module1())
    );
    assert_eq!(node("/DEVICES/device1/TWIN"), NodeAddress::Twin(device1()));
    // Ids keep their case (spec file §2.1).
    assert_eq!(node("/devices/Device1/twin"), NodeAddress::Twin(Identity::device("Device1")));
}

#[test]
fn ids_are_percent_decoded_when_that_gives_a_valid_id() {
    assert_eq!(node("/devices/dev%231/twin"), NodeAddress::Twin(Identity::device("dev#1")));
    assert_eq!(node("/devices/a%2Bb/twin"), NodeAddress::Twin(Identity::device("a+b")));
    // Raw, as Node and C insert ids: `+` stays `+`, a broken escape stays as sent.
    assert_eq!(node("/devices/a+b/twin"), NodeAddress::Twin(Identity::device("a+b")));
    assert_eq!(node("/devices/100%/twin"), NodeAddress::Twin(Identity::device("100%")));
    // An escape that decodes to no valid id (`/`, space) leaves the raw segment,
    // itself a valid id since ids may hold `%`.
    assert_eq!(node("/devices/a%2Fb/twin"), NodeAddress::Twin(Identity::device("a%2Fb")));
    assert_eq!(node("/devices/d%20e/twin"), NodeAddress::Twin(Identity::device("d%20e")));
}

#[test]
fn ids_that_would_be_misread_are_written_encoded() {
    for (id, segment) in
        [("dev#1", "dev%231"), ("a%41", "a%2541"), ("what?", "what%3F"), ("a+b", "a+b")]
    {
        let path = NodeAddress::Twin(Identity::device(id)).path();
        assert_eq!(path, alloc::format!("/devices/{segment}/twin"));
        assert_eq!(node(&path), NodeAddress::Twin(Identity::device(id)));
    }
}

#[test]
fn garbage_is_refused_with_not_found() {
    for address in [
        "",
        "/",
        "cbs",
        "$CBS",
        "/$cbs",
        "$cbs/",
        "devices/device1/twin",
        "/devices",
        "/devices/device1",
        "/devices/device1/",
        "/devices/device1/twin/",
        "/devices/device1/messages",
        "/devices/device1/messages/events/",
        "/devices/device1/messages/events?api-version=2021-04-12",
        "/devices/device1/messages/other",
        "/devices/device1/modules/module1",
        "/devices/device1/modules/module1/",
        "/devices/device1/methods",
        "/devices/device1/twin/extra",
        "/things/device1/twin",
        "amqps://",
        "amqps:///devices/device1/twin",
        "amqps://host:/devices/device1/twin",
        "amqps://host:99999/devices/device1/twin",
        "amqps://host:x/devices/device1/twin",
        "amqps://host",
        "amqp://host/devices/device1/twin",
        "https://host/devices/device1/twin",
    ] {
        let e = NodeAddress::parse(address).unwrap_err();
        assert!(matches!(e, AddressError::Unknown(_)), "{address}: {e:?}");
        assert_eq!(e.condition(), condition::NOT_FOUND, "{address}");
    }
}

#[test]
fn invalid_ids_are_refused_with_not_found() {
    for address in ["/devices//twin", "/devices/dev ice/twin", "/devices/device1/modules//twin"] {
        assert_eq!(NodeAddress::parse(address), Err(AddressError::InvalidId), "{address}");
    }
    let long = alloc::format!("/devices/{}/twin", "x".repeat(129));
    assert_eq!(NodeAddress::parse(&long), Err(AddressError::InvalidId));
    assert_eq!(AddressError::InvalidId.condition(), condition::NOT_FOUND);
}

#[test]
fn modules_have_no_c2d_node() {
    let e =
        NodeAddress::parse("/devices/device1/modules/module1/messages/devicebound").unwrap_err();
    assert_eq!(e, AddressError::ModuleC2d);
    assert_eq!(e.condition(), condition::NOT_ALLOWED);
}

#[test]
fn attach_directions_follow_the_spec_table() {
    let yes = |_: &Identity| true;
    for (node, sender, receiver) in [
        (NodeAddress::Cbs, true, true),
        (NodeAddress::Events(device1()), true, false),
        (NodeAddress::Events(module1()), true, true),
        (NodeAddress::C2d(device1()), false, true),
        (NodeAddress::Twin(module1()), true, true),
        (NodeAddress::Methods(device1()), true, true),
    ] {
        for (role, allowed) in [(Role::Sender, sender), (Role::Receiver, receiver)] {
            let result = node.check_attach(role, yes);
            if allowed {
                assert_eq!(result, Ok(()), "{node} {role:?}");
            } else {
                let e = result.unwrap_err();
                assert_eq!(e, AttachError::WrongRole { node: node.kind(), role });
                assert_eq!(e.condition(), condition::NOT_ALLOWED);
            }
        }
    }
}

#[test]
fn attaching_without_a_token_is_unauthorized_access() {
    let only_device1 = |id: &Identity| *id == device1();
    assert_eq!(NodeAddress::Twin(device1()).check_attach(Role::Sender, only_device1), Ok(()));
    let e = NodeAddress::Twin(module1()).check_attach(Role::Sender, only_device1).unwrap_err();
    assert_eq!(e, AttachError::Unauthorized(module1()));
    assert_eq!(e.condition(), condition::UNAUTHORIZED_ACCESS);
    // `$cbs` is where a token is put, so it needs none.
    assert_eq!(NodeAddress::Cbs.check_attach(Role::Sender, |_| false), Ok(()));
    let e: AttachError = AddressError::ModuleC2d.into();
    assert_eq!(e.condition(), condition::NOT_ALLOWED);
}

#[test]
fn attach_is_checked_against_the_cbs_table() {
    let mut tokens = cbs::CbsTokens::default();
    let now = crate::time::Timestamp::from_unix_secs(100);
    tokens.put(device1(), now).unwrap();
    let node = node("amqps://myhub.azure-devices.net/devices/device1/messages/devicebound");
    assert_eq!(node.check_attach(Role::Receiver, |id| tokens.is_authorised(id, now)), Ok(()));
    let later = crate::time::Timestamp::from_unix_secs(101);
    assert_eq!(
        node.check_attach(Role::Receiver, |id| tokens.is_authorised(id, later)),
        Err(AttachError::Unauthorized(device1()))
    );
}

fn id() -> impl Strategy<Value = String> {
    "[A-Za-z0-9\\-.+%_#*?!(),=@$']{1,16}"
}

fn identity() -> impl Strategy<Value = Identity> {
    (id(), proptest::option::of(id()))
        .prop_map(|(device_id, module_id)| Identity { device_id, module_id })
}

fn node_address() -> impl Strategy<Value = NodeAddress> {
    prop_oneof![
        Just(NodeAddress::Cbs),
        identity().prop_map(NodeAddress::Events),
        id().prop_map(|d| NodeAddress::C2d(Identity::device(d))),
        identity().prop_map(NodeAddress::Twin),
        identity().prop_map(NodeAddress::Methods),
    ]
}

proptest! {
    #[test]
    fn path_parses_back_to_the_node(node in node_address()) {
        prop_assert_eq!(NodeAddress::parse(&node.path()), Ok(ParsedAddress { host: None, node: node.clone() }));
        let absolute = alloc::format!("amqps://myhub.azure-devices.net:5671{}{}",
            if node == NodeAddress::Cbs { "/" } else { "" }, node.path());
        let parsed = NodeAddress::parse(&absolute).unwrap();
        prop_assert_eq!(parsed.host.as_deref(), Some("myhub.azure-devices.net"));
        prop_assert_eq!(parsed.node, node);
    }

    #[test]
    fn any_text_parses_or_says_why(address in "\\PC{0,80}") {
        let _ = NodeAddress::parse(&address).map_err(|e| e.condition());
    }
}
