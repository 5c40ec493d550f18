//! The AMQP device against the hub engine, in simulated time: single devices
//! through [`Pair`], many devices on one connection through [`MuxPair`].

use alloc::string::String;
use alloc::vec::Vec;

use super::*;
use crate::Protocol;
use crate::device::{DeviceEvent, DisconnectReason};
use crate::hub::{HubConfig, HubEvent, Outcome};
use crate::iothub::{Disposition, Message};
use crate::testing::Pair;
use crate::time::Duration;

fn amqp_device(pair: &mut Pair, device_id: &str) -> usize {
    pair.add_device(device_id, |c| c.protocol = Protocol::Amqp)
}

fn connected(events: &[DeviceEvent]) -> usize {
    events.iter().filter(|e| matches!(e, DeviceEvent::Connected { .. })).count()
}

#[test]
fn single_device_connects_by_put_token_and_attaches() {
    let mut pair = Pair::new(HubConfig::default());
    let d = amqp_device(&mut pair, "dev1");
    pair.drive();
    assert_eq!(connected(&pair.devices[d].events), 1, "{:?} {:?}", pair.devices[d].events, pair.hub_events);
}
