#!/usr/bin/env node
// One device session with Microsoft's Azure IoT device SDK for Node.js, driven by
// hubwire's interop tests (conformance/src/peers.rs). Stdout carries one JSON object
// per line, written synchronously so the test sees each as it happens:
//   {"event":"connected"}  after CONNACK (the C2D subscription is requested before
//                          the telemetry, so a hub that handles packets in order
//                          has it in place by the time it acknowledges that)
//   {"event":"sent"}       after the telemetry message is acknowledged
//   {"event":"batchSent","count":N}  after --batch N messages went in one
//                          sendEventBatch (bodies "batch-1"…, the --properties;
//                          the SDK's batch carries application properties only),
//                          acknowledged
//   {"event":"c2d",...}    per cloud-to-device message, which is then settled as
//                          --settle says (completed when it says nothing); always
//                          after "sent", even for messages that came earlier. Over
//                          AMQP it also carries the hub's message annotations
//                          `deliveryCount` (iothub-deliverycount) and `lockToken`
//                          (x-opt-lock-token), null over MQTT; over HTTP the lock
//                          token is the ETag and the delivery count is not exposed
//   {"event":"settled","action":...,"messageId":...}  once the SDK settled one
//   {"event":"twin","desired":{..},"reported":{..}}  with --twin: the twin, got after
//                          "sent"; then {"event":"reported"} once --report's patch
//                          is taken, {"event":"twinReady"}, and per desired-property
//                          update after the twin {"event":"desired","patch":{..}}
//   {"event":"method","name":..,"payload":..}  per direct method, answered as
//                          --method says
//   {"event":"closed"}     after the client closed (once --c2d messages, --desired
//                          updates and --methods calls came); exit status 0
//   {"event":"error","stage":"args|connect|send|c2d|close","message":...}; exit status 1
//                          (2 for "args"); a stage that outlasts --timeout-ms is one.
//
// Usage: device.js --connection-string CS --ca FILE
//          [--transport mqtt|mqtt-ws|amqp|amqp-ws|http] [--properties JSON] [--body TEXT]
//          [--message-id ID] [--batch N] [--c2d N] [--settle ACTION,...] [--timeout-ms MS]
//          [--twin] [--report JSON] [--desired N] [--method NAME=STATUS:JSON] [--methods N]
// --settle lists complete|reject|abandon for the 1st, 2nd, … C2D message received
// (an abandoned one comes again and takes the next action); it sets --c2d to its
// length.
'use strict';

const fs = require('fs');
const { Client, Message } = require('azure-iot-device');
const { Mqtt, MqttWs } = require('azure-iot-device-mqtt');
const { Amqp, AmqpWs } = require('azure-iot-device-amqp');
const { Http } = require('azure-iot-device-http');
const { NoRetry } = require('azure-iot-common');

const TRANSPORTS = { mqtt: Mqtt, 'mqtt-ws': MqttWs, amqp: Amqp, 'amqp-ws': AmqpWs, http: Http };
// The SDK's HTTP transport names a C2D message's application properties by their
// header (spec file §6.4): the prefix is taken off to report the property.
const HTTP_APP_PREFIX = 'iothub-app-';
const ACTIONS = ['complete', 'reject', 'abandon'];

let stage = 'args';
let stageTimer = null;

function emit(event) {
  fs.writeSync(1, JSON.stringify(event) + '\n');
}

function fail(message) {
  emit({ event: 'error', stage, message: String(message) });
  process.exit(stage === 'args' ? 2 : 1);
}

function parseArgs(argv) {
  const options = {
    transport: 'mqtt',
    properties: {},
    body: '',
    messageId: undefined,
    batch: 0,
    c2d: 1,
    settle: [],
    timeoutMs: 10000,
    twin: false,
    report: undefined,
    desired: 0,
    method: undefined,
    methods: 0,
  };
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i];
    if (name === '--twin') {
      options.twin = true;
      i -= 1;
      continue;
    }
    const value = argv[i + 1];
    if (value === undefined) fail(`${name} needs a value`);
    switch (name) {
      case '--connection-string': options.connectionString = value; break;
      case '--ca': options.ca = fs.readFileSync(value, 'utf8'); break;
      case '--transport':
        if (!(value in TRANSPORTS)) fail(`unknown transport ${value}`);
        options.transport = value;
        break;
      case '--properties': {
        const parsed = JSON.parse(value);
        if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
          fail('--properties must be a JSON object');
        }
        options.properties = parsed;
        break;
      }
      case '--body': options.body = value; break;
      case '--message-id': options.messageId = value; break;
      case '--batch': options.batch = nonNegative(name, value); break;
      case '--c2d': options.c2d = nonNegative(name, value); break;
      case '--settle':
        options.settle = value.split(',');
        if (!options.settle.every((a) => ACTIONS.includes(a))) {
          fail(`--settle takes ${ACTIONS.join('|')}, comma-separated`);
        }
        options.c2d = options.settle.length;
        break;
      case '--timeout-ms': options.timeoutMs = nonNegative(name, value); break;
      case '--report': options.report = JSON.parse(value); break;
      case '--desired': options.desired = nonNegative(name, value); break;
      case '--methods': options.methods = nonNegative(name, value); break;
      case '--method': {
        const match = /^([^=]+)=(\d+):(.*)$/.exec(value);
        if (!match) fail('--method takes NAME=STATUS:JSON');
        options.method = { name: match[1], status: Number(match[2]), payload: JSON.parse(match[3]) };
        break;
      }
      default: fail(`unknown argument ${name}`);
    }
  }
  if (!options.connectionString) fail('--connection-string is required');
  if (!options.ca) fail('--ca is required: the SDK must trust the test CA, not the platform roots');
  return options;
}

function nonNegative(name, value) {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) fail(`${name} must be a non-negative integer`);
  return n;
}

// Every stage has its own deadline, so a stuck SDK reports where it stuck.
function enter(next, timeoutMs) {
  stage = next;
  clearTimeout(stageTimer);
  stageTimer = setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs);
}

function isJson(text) {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

function telemetry(options, body, messageId) {
  const message = new Message(body);
  if (messageId !== undefined) message.messageId = messageId;
  if (isJson(body)) {
    message.contentType = 'application/json';
    message.contentEncoding = 'utf-8';
  }
  for (const [key, value] of Object.entries(options.properties)) {
    message.properties.add(key, String(value));
  }
  return message;
}

// A twin section without the SDK's own members (its update function, metadata).
function plain(section) {
  return JSON.parse(JSON.stringify(section));
}

function describe(message) {
  const properties = {};
  for (const { key, value } of message.properties.propertyList) {
    const name = key.startsWith(HTTP_APP_PREFIX) ? key.slice(HTTP_APP_PREFIX.length) : key;
    properties[name] = value;
  }
  // Only the AMQP transport keeps the message it decoded (rhea's) here.
  const annotations = message.transportObj?.message_annotations ?? {};
  return {
    event: 'c2d',
    body: Buffer.from(message.data ?? '').toString('utf8'),
    // The SDK's Message starts with '' for these; absent is null, as in device.py.
    messageId: message.messageId || null,
    correlationId: message.correlationId || null,
    contentType: message.contentType || null,
    contentEncoding: message.contentEncoding || null,
    properties,
    deliveryCount: annotations['iothub-deliverycount'] ?? null,
    lockToken: annotations['x-opt-lock-token'] ?? message.lockToken ?? null,
  };
}

async function run() {
  let options;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (e) {
    fail(e.message);
  }

  const client = Client.fromConnectionString(options.connectionString, TRANSPORTS[options.transport]);
  client.on('error', (e) => fail(e.message));
  const onDisconnect = () => fail('disconnected by the hub');
  client.on('disconnect', onDisconnect);
  client.setRetryPolicy(new NoRetry());
  const transportOptions = { ca: options.ca };
  // azure-iot-device-http 1.14.4's setOptions calls back only when the options
  // hold a receive policy (or interval, at, cron, …): without one the promise never
  // settles and Node exits with nothing left to run. The policy given is the SDK's
  // default: poll every second, draining the queue after each message.
  if (options.transport === 'http') transportOptions.http = { receivePolicy: { interval: 1 } };
  await client.setOptions(transportOptions);

  // Listening before open: a hub may deliver queued C2D messages right after
  // CONNACK (a persistent session does), and the SDK acknowledges and drops those
  // that find no listener. Their lines wait until `sent` is out, so the order of
  // lines is always the same.
  let received = 0;
  let allReceived;
  const done = new Promise((resolve) => { allReceived = resolve; });
  if (options.c2d === 0) allReceived();
  let early = [];
  // One settlement at a time, each flushed before the next: rhea 1.0.24 (under
  // azure-iot-amqp-base) writes the dispositions of one tick together and merges
  // consecutive delivery ids into one range while the range holds a single
  // delivery without comparing outcomes, so a complete then a reject of the next
  // message go out as one `accepted` for both. rhea flushes on process.nextTick;
  // setImmediate runs after that.
  let settled = 0;
  let settling = Promise.resolve();
  client.on('message', (message) => {
    if (early) early.push(describe(message));
    else emit(describe(message));
    const action = options.settle[settled] ?? 'complete';
    settled += 1;
    settling = settling
      .then(() => client[action](message))
      .then(() => new Promise((resolve) => setImmediate(resolve)))
      .then(() => {
        const line = { event: 'settled', action, messageId: message.messageId || null };
        if (early) early.push(line);
        else emit(line);
        received += 1;
        if (received === options.c2d) allReceived();
      }, (e) => fail(`${action}: ${e.message}`));
  });

  // Registered before open, so the SDK subscribes as it connects.
  let methodsSeen = 0;
  let allMethods;
  const methodsDone = new Promise((resolve) => { allMethods = resolve; });
  if (options.methods === 0) allMethods();
  if (options.method) {
    client.onDeviceMethod(options.method.name, (request, response) => {
      const payload = Buffer.isBuffer(request.payload)
        ? request.payload.toString('utf8')
        : request.payload;
      emit({ event: 'method', name: request.methodName, payload });
      response.send(options.method.status, options.method.payload, (e) => {
        if (e) fail(`method response: ${e.message}`);
        methodsSeen += 1;
        if (methodsSeen === options.methods) allMethods();
      });
    });
  }

  enter('connect', options.timeoutMs);
  await client.open();
  emit({ event: 'connected' });

  enter('send', options.timeoutMs);
  await client.sendEvent(telemetry(options, options.body, options.messageId));
  emit({ event: 'sent' });
  if (options.batch > 0) {
    const batch = [];
    for (let i = 1; i <= options.batch; i += 1) batch.push(telemetry(options, `batch-${i}`));
    await client.sendEventBatch(batch);
    emit({ event: 'batchSent', count: options.batch });
  }
  early.forEach(emit);
  early = null;

  let allDesired;
  const desiredDone = new Promise((resolve) => { allDesired = resolve; });
  if (options.desired === 0) allDesired();
  if (options.twin) {
    enter('twin', options.timeoutMs);
    const twin = await client.getTwin();
    const { desired, reported } = twin.properties;
    emit({ event: 'twin', desired: plain(desired), reported: plain(reported) });
    // The SDK emits the whole desired section when a listener is added: only
    // versions after the twin's are updates.
    const initial = desired.$version;
    let desiredSeen = 0;
    twin.on('properties.desired', (delta) => {
      if (!(delta.$version > initial)) return;
      emit({ event: 'desired', patch: plain(delta) });
      desiredSeen += 1;
      if (desiredSeen === options.desired) allDesired();
    });
    if (options.report !== undefined) {
      await new Promise((resolve, reject) => {
        reported.update(options.report, (e) => (e ? reject(e) : resolve()));
      });
      emit({ event: 'reported' });
    }
    emit({ event: 'twinReady' });
  }

  enter('c2d', options.timeoutMs);
  await done;
  enter('desired', options.timeoutMs);
  await desiredDone;
  enter('methods', options.timeoutMs);
  await methodsDone;

  enter('close', options.timeoutMs);
  client.removeListener('disconnect', onDisconnect);
  await client.close();
  emit({ event: 'closed' });
  process.exit(0);
}

process.on('uncaughtException', (e) => fail(e.message));
run().catch((e) => fail(e.message));
