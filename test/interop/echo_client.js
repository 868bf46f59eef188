#!/usr/bin/env node
'use strict'

// Interop check: the real npm @cryb/mesa@1.5.8 Client against a Mesa server
// (our C++ server in CI; any Mesa-compatible echo server works).
//
// Usage: node echo_client.js ws://127.0.0.1:PORT/ws
//
// Flow: connect -> wait for the WebSocket open ('connected') AND for the
// hello (op 10) to be processed by the Client -> send
// {"op":0,"d":{"n":42,"text":"héllo"},"t":"PING"} -> wait for a message of
// type PONG whose data deep-equals what was sent -> print "interop ok", exit 0.
// Any failure prints a reason on stderr and exits 1.
//
// Notes on @cryb/mesa 1.5.8 Client behaviour this script works around:
//  * 'connected' is emitted on the raw WebSocket 'open', i.e. BEFORE the hello
//    arrives, so hello processing is detected by wrapping the Client's
//    (private) registerMessage method.
//  * The hello handler does `rules.indexOf(...)` with no guard: a hello whose
//    `d` is missing/null or lacks a `rules` array throws inside the ws
//    'message' listener (uncaught exception). We catch that and report it.
//  * With autoConnect (the default) the constructor's connect() promise has no
//    catch, so a refused connection becomes an unhandled rejection; we use
//    autoConnect:false and call connect() ourselves.
//  * If the hello carries c_reconnect_interval the Client starts a reconnect
//    interval on ANY close (even after disconnect()), so we always
//    process.exit() explicitly.

const { isDeepStrictEqual, inspect } = require('util')
const { Client, Message } = require('@cryb/mesa')

const TIMEOUT_MS = 10000
const SENT = { n: 42, text: 'héllo' }

const url = process.argv[2]
if (!url || !/^wss?:\/\//.test(url)) {
  process.stderr.write('usage: node echo_client.js ws://127.0.0.1:PORT/ws\n')
  process.exit(1)
}

let finished = false
let client = null

function finish (code, msg) {
  if (finished) return
  finished = true
  clearTimeout(timer)
  try {
    if (client && client.ws) client.disconnect(1000)
  } catch (_) { /* ignore: we are exiting anyway */ }
  const stream = code === 0 ? process.stdout : process.stderr
  stream.write(msg + '\n', () => process.exit(code))
  // Safety net in case the write callback never fires.
  setTimeout(() => process.exit(code), 500).unref()
}

function fail (reason) {
  finish(1, `interop FAILED: ${reason}`)
}

const timer = setTimeout(() => {
  const stage = !connected ? 'waiting for the WebSocket connection'
    : !helloSeen ? 'waiting for the hello (op 10)'
      : 'waiting for the PONG reply'
  fail(`timeout after ${TIMEOUT_MS / 1000} s ${stage}`)
}, TIMEOUT_MS)

process.on('uncaughtException', err => fail(`uncaught exception: ${err && err.stack ? err.stack : err}`))
process.on('unhandledRejection', err => fail(`unhandled rejection: ${err && err.stack ? err.stack : err}`))

let connected = false
let helloSeen = false
let pingSent = false

client = new Client(url, { autoConnect: false })

// Detect the hello: intercept raw frames before the Client processes them.
// (ws.on('message', data => this.registerMessage(data)) looks the method up
// at call time, so an instance override is picked up.)
const origRegisterMessage = client.registerMessage
client.registerMessage = function (data) {
  let json = null
  try { json = JSON.parse(data.toString()) } catch (_) { /* Client logs it */ }

  if (json && json.op === 10) {
    if (helloSeen) return fail(`received a second hello: ${data.toString()}`)
    const d = json.d
    if (d === null || typeof d !== 'object' || Array.isArray(d)) {
      return fail(`hello (op 10) has no object "d" (the Client would crash): ${data.toString()}`)
    }
    if (!Array.isArray(d.rules)) {
      return fail(`hello (op 10) lacks a "rules" array (the Client would crash on rules.indexOf): ${data.toString()}`)
    }
    for (const k of ['c_heartbeat_interval', 'c_reconnect_interval', 'c_authentication_timeout']) {
      if (k in d && typeof d[k] !== 'number') {
        return fail(`hello field ${k} is not a number: ${data.toString()}`)
      }
    }
    try {
      origRegisterMessage.call(this, data)
    } catch (err) {
      return fail(`Client threw while processing the hello ${data.toString()}: ${err && err.stack ? err.stack : err}`)
    }
    helloSeen = true
    if (process.env.INTEROP_VERBOSE) process.stderr.write(`hello: ${data.toString()}\n`)
    return maybeSendPing()
  }

  return origRegisterMessage.call(this, data)
}

function maybeSendPing () {
  if (finished || pingSent || !connected || !helloSeen) return
  pingSent = true
  // Client.send takes a Message(opcode, data, type); op 0 = dispatch.
  // Serialized by the Client as {"op":0,"d":{"n":42,"text":"héllo"},"t":"PING"}
  client.send(new Message(0, SENT, 'PING'))
}

client.on('connected', () => {
  connected = true
  maybeSendPing()
})

client.on('message', message => {
  if (finished) return
  if (message.type !== 'PONG') {
    if (process.env.INTEROP_VERBOSE) {
      process.stderr.write(`ignoring message op=${message.opcode} t=${message.type}\n`)
    }
    return
  }
  if (!pingSent) return fail('received PONG before PING was sent')
  if (message.opcode !== 0) {
    return fail(`PONG has opcode ${message.opcode}, expected 0`)
  }
  if (!isDeepStrictEqual(message.data, SENT)) {
    return fail(`PONG data mismatch: expected ${JSON.stringify(SENT)}, got ${JSON.stringify(message.data)} (${inspect(message.data)})`)
  }
  finish(0, 'interop ok')
})

client.on('disconnected', (code, reason) => {
  fail(`disconnected by server before PONG (code ${code}${reason ? `, reason "${reason}"` : ''})` +
    (helloSeen ? '' : ' — no hello was received'))
})

client.on('error', err => {
  fail(`client error: ${err && err.message ? err.message : err}`)
})

client.connect().catch(err => {
  fail(`could not connect to ${url}: ${err && err.message ? err.message : err}`)
})
