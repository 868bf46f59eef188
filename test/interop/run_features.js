#!/usr/bin/env node
'use strict'

// Interop with features: the real npm @cryb/mesa@1.5.8 Client against our C++
// interop_server (heartbeat 200 ms / max 2, reconnect, authentication, sync).
//
// Usage: node run_features.js path/to/interop_server
//
// Starts the server on a free port, runs the scenarios one after the other
// (each with its own timeout), prints "ok - ..." per passed scenario, and on
// the first failure prints "interop-features FAILED: ..." (plus the server's
// stderr) and exits 1. The server is always killed.
//
// @cryb/mesa 1.5.8 Client quirks this script has to live with:
//  * 'connected' fires on the WebSocket 'open', before the hello is read, so
//    the hello is detected by wrapping the instance's registerMessage (the ws
//    listener looks the method up at call time).
//  * authenticate() only ever resolves (on op 22); it never rejects, so a
//    failed authentication is seen as a 'disconnected' event.
//  * Messages sent before 'open' are queued and flushed with
//    `this.queue.forEach(this.send)`, which loses `this` and throws: never
//    send (or authenticate) before connect() resolved.
//  * With c_reconnect_interval in the hello the Client reconnects after ANY
//    close, even after its own disconnect(). Each client made here turns that
//    off from its own 'disconnected' listener (which runs before the Client's
//    reconnect logic) unless the scenario wants the reconnect.
//  * A redelivered message's `s` becomes `message.sequence`.

const { spawn } = require('child_process')
const { isDeepStrictEqual } = require('util')
const WebSocket = require('ws')
const { Client, Message } = require('@cryb/mesa')

const HEARTBEAT_MS = 200
const RECONNECT_MS = 500
const AUTH_TIMEOUT_MS = 10000 // the server's default, advertised in the hello
const MAX_ATTEMPTS = 2

const binary = process.argv[2]
if (!binary) {
  console.error('usage: node run_features.js path/to/interop_server')
  process.exit(2)
}

// ---- process plumbing ----------------------------------------------------
let server = null
let serverErr = ''
let exiting = false

function exit (code, text) {
  if (exiting) return
  exiting = true
  if (server) {
    server.removeAllListeners('exit')
    server.kill('SIGKILL')
  }
  const stream = code === 0 ? process.stdout : process.stderr
  stream.write(text + '\n', () => process.exit(code))
  setTimeout(() => process.exit(code), 500).unref()
}

function die (reason) {
  const tail = serverErr.trim() ? `\n--- interop_server stderr ---\n${serverErr.trim()}` : ''
  exit(1, `interop-features FAILED: ${reason}${tail}`)
}

process.on('uncaughtException', err => die(`uncaught exception: ${err && err.stack ? err.stack : err}`))
process.on('unhandledRejection', err => die(`unhandled rejection: ${err && err.stack ? err.stack : err}`))

function startServer () {
  return new Promise((resolve, reject) => {
    server = spawn(binary, [String(HEARTBEAT_MS), String(RECONNECT_MS)], { stdio: ['ignore', 'pipe', 'pipe'] })
    const timer = setTimeout(() => reject(new Error('interop_server did not print its port within 10 s')), 10000)
    server.on('error', err => reject(new Error(`cannot start ${binary}: ${err.message}`)))
    server.on('exit', (code, signal) => die(`interop_server exited early (code ${code}, signal ${signal})`))
    server.stderr.on('data', chunk => { serverErr += chunk })
    let out = ''
    server.stdout.on('data', chunk => {
      out += chunk
      const m = out.match(/listening on (\d+)/)
      if (!m) return
      clearTimeout(timer)
      server.stdout.removeAllListeners('data')
      server.stdout.resume()
      resolve(Number(m[1]))
    })
  })
}

// ---- helpers ---------------------------------------------------------------
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const show = v => JSON.stringify(v)

function check (cond, what) {
  if (!cond) throw new Error(what)
}

function expectEqual (actual, expected, what) {
  if (!isDeepStrictEqual(actual, expected)) {
    throw new Error(`${what}: expected ${show(expected)}, got ${show(actual)}`)
  }
}

// Polls `cond` until it holds; fails with `what` after `ms`.
async function until (cond, ms, what) {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(5)
  }
}

let url = null
let live = [] // clients of the running scenario

// A real Client, instrumented: c.frames (every frame received, parsed, with
// its time), c.sent (every Message the Client sent), c.closes (disconnected
// events), c.messages (its 'message' events). `ignore(op)` makes it drop the
// frames of that opcode before the Client sees them.
function makeClient (label, { allowReconnect = false, ignoreOps = [] } = {}) {
  const c = new Client(url, { autoConnect: false })
  c.label = label
  c.frames = []
  c.sent = []
  c.closes = []
  c.messages = []
  c.connects = []
  c.errors = []
  c.allowReconnect = allowReconnect
  c.helloError = null

  const origRegister = c.registerMessage
  c.registerMessage = function (data) {
    let json = null
    try { json = JSON.parse(data.toString()) } catch (_) { /* the Client logs it */ }
    c.frames.push({ at: Date.now(), json, text: data.toString() })
    if (json && ignoreOps.includes(json.op)) return
    if (json && json.op === 10) {
      try {
        return origRegister.call(this, data)
      } catch (err) {
        c.helloError = err
        throw new Error(`${label}: the Client threw on our hello ${data.toString()}: ${err.stack || err}`)
      }
    }
    return origRegister.call(this, data)
  }
  const origSend = c.send
  c.send = function (message) {
    c.sent.push(message)
    return origSend.call(this, message)
  }
  c.on('connected', info => c.connects.push(info))
  c.on('message', m => c.messages.push(m))
  c.on('disconnected', (code, reason, info) => {
    c.closes.push({ at: Date.now(), code, reason, info })
    // Runs before the Client's own reconnect logic in registerClose.
    if (!c.allowReconnect) c.reconnectionIntervalTime = undefined
  })
  c.on('error', err => c.errors.push(err))
  live.push(c)
  return c
}

const hellos = c => c.frames.filter(f => f.json && f.json.op === 10)
const ofType = (c, type) => c.messages.filter(m => m.type === type)

// Connects and waits until the Client has processed our hello.
async function open (c, ms = 3000) {
  const before = hellos(c).length
  await c.connect()
  await until(() => hellos(c).length > before, ms, `${c.label}: the hello (op 10)`)
  check(!c.helloError, `${c.label}: the Client failed on the hello`)
}

// Closes every client of the scenario for good (no reconnect).
async function closeAll () {
  const clients = live
  live = []
  for (const c of clients) {
    c.allowReconnect = false
    c.reconnectionIntervalTime = undefined
    if (c.reconnectionInterval) clearInterval(c.reconnectionInterval)
    const ws = c.ws
    if (!ws) continue
    if (ws.readyState === WebSocket.OPEN) c.disconnect(1000)
    else if (ws.readyState === WebSocket.CONNECTING) ws.terminate()
  }
  const end = Date.now() + 2000
  while (clients.some(c => c.ws && c.ws.readyState !== WebSocket.CLOSED) && Date.now() < end) await sleep(5)
}

// ---- scenarios -------------------------------------------------------------
const scenarios = []
const scenario = (name, ms, fn) => scenarios.push({ name, ms, fn })

scenario('a: the Client reads our hello (intervals, rules)', 5000, async () => {
  const c = makeClient('a')
  await open(c)
  const first = c.frames[0]
  check(first && first.json && first.json.op === 10, `the first frame is not the hello: ${first && first.text}`)
  expectEqual(first.json.d, {
    c_heartbeat_interval: HEARTBEAT_MS,
    c_reconnect_interval: RECONNECT_MS,
    c_authentication_timeout: AUTH_TIMEOUT_MS,
    rules: ['sends_user_object']
  }, 'hello d')
  expectEqual(c.heartbeatIntervalTime, HEARTBEAT_MS, 'Client.heartbeatIntervalTime')
  expectEqual(c.reconnectionIntervalTime, RECONNECT_MS, 'Client.reconnectionIntervalTime')
  expectEqual(c.authenticationTimeout, AUTH_TIMEOUT_MS, 'Client.authenticationTimeout')
  expectEqual(c.rules, ['sends_user_object'], 'Client.rules')
  // Still usable after the hello: a PING is answered.
  c.send(new Message(0, { after: 'hello' }, 'PING'))
  await until(() => ofType(c, 'PONG').length === 1, 2000, 'the PONG after the hello')
  expectEqual(c.closes, [], 'disconnections')
})

scenario('b: authenticate({token:"ann"}) resolves with our user object', 5000, async () => {
  const c = makeClient('b')
  await open(c)
  const user = await c.authenticate({ token: 'ann' })
  expectEqual(user, { id: 'ann', name: 'User ann' }, 'authenticate() result')
  check(c.authenticated === true, 'Client.authenticated is not true after op 22')
  const auth = c.sent.find(m => m.opcode === 2)
  expectEqual(auth && auth.data, { token: 'ann', shouldSync: true }, 'op 2 sent by the Client')
  const op22 = c.frames.filter(f => f.json && f.json.op === 22)
  expectEqual(op22.map(f => f.json), [{ op: 22, d: { id: 'ann', name: 'User ann' } }], 'op 22 frames')
  expectEqual(c.closes, [], 'disconnections')
})

scenario('c: the Client answers heartbeats and stays connected for 7 intervals', 20000, async () => {
  const c = makeClient('c')
  await open(c)
  const beatsOf = () => c.frames.filter(f => f.json && f.json.op === 1)
  await until(() => beatsOf().length >= 7 || c.closes.length > 0, 15000, 'seven heartbeats (op 1)')
  expectEqual(c.closes, [], 'disconnections while answering heartbeats')
  const beats = beatsOf()
  for (const b of beats) expectEqual(b.json.d, {}, 'heartbeat d of an answering client')
  const acks = c.sent.filter(m => m.opcode === 11)
  expectEqual(acks.length, beats.length, 'op 11 answers sent by the Client')
  check(c.ws && c.ws.readyState === WebSocket.OPEN, 'the connection is not open any more')
})

scenario('d: a client that ignores heartbeats gets {}, {tries:1,max:2}, {tries:2,max:2}, then 4000', 8000, async () => {
  const expected = [{}, { tries: 1, max: MAX_ATTEMPTS }, { tries: 2, max: MAX_ATTEMPTS }]

  // The real Client, patched to never see op 1 (so it never sends op 11).
  const c = makeClient('d', { ignoreOps: [1] })
  await open(c)
  await until(() => c.closes.length > 0, HEARTBEAT_MS * 10, 'the heartbeat-timeout close')
  const beats = c.frames.filter(f => f.json && f.json.op === 1)
  expectEqual(beats.map(f => f.json.d), expected, 'heartbeats received before the close')
  expectEqual(c.closes[0].code, 4000, 'close code')
  check(c.sent.every(m => m.opcode !== 11), 'the patched Client sent op 11')
  const span = c.closes[0].at - beats[0].at
  check(span >= HEARTBEAT_MS * 2.5, `closed ${span} ms after the first beat: too early for ${MAX_ATTEMPTS} retries`)

  // The same with a raw socket that never answers.
  const frames = []
  const closed = await new Promise((resolve, reject) => {
    const ws = new WebSocket(url)
    ws.on('message', data => frames.push(JSON.parse(data.toString())))
    ws.on('close', (code, reason) => resolve({ code, reason: String(reason) }))
    ws.on('error', reject)
  })
  expectEqual(frames.filter(f => f.op === 1).map(f => f.d), expected, 'raw socket: heartbeats before the close')
  expectEqual(closed.code, 4000, 'raw socket: close code')
})

scenario('e: messages for offline "zoe" are synced to her Client with sequence 1..5', 8000, async () => {
  const sender = makeClient('e-sender')
  await open(sender)
  await sender.authenticate({ token: 'sam' })
  for (let n = 1; n <= 5; ++n) sender.send(new Message(0, { to: 'zoe', n }, 'SEND_TO'))
  // The server handles frames in order: once the PONG is back, the five
  // SEND_TO have been routed (zoe is offline, so stored).
  sender.send(new Message(0, { flush: true }, 'PING'))
  await until(() => ofType(sender, 'PONG').length === 1, 2000, 'the sender\'s PONG')
  await sleep(50)
  check(ofType(sender, 'SYNCED').length === 0, 'the sender received a SYNCED meant for zoe')

  const zoe = makeClient('e-zoe')
  await open(zoe)
  check(ofType(zoe, 'SYNCED').length === 0, 'zoe got SYNCED before authenticating')
  const user = await zoe.authenticate({ token: 'zoe' })
  expectEqual(user, { id: 'zoe', name: 'User zoe' }, 'zoe\'s user object')
  await until(() => ofType(zoe, 'SYNCED').length >= 5, 3000, 'the 5 synced messages')
  await sleep(200) // nothing more may come
  const synced = ofType(zoe, 'SYNCED')
  expectEqual(synced.map(m => m.data), [1, 2, 3, 4, 5].map(n => ({ n })), 'synced data in order')
  expectEqual(synced.map(m => m.sequence), [1, 2, 3, 4, 5], 'synced sequence numbers')
  expectEqual(synced.map(m => m.opcode), [0, 0, 0, 0, 0], 'synced opcodes')

  // Now online: a new message arrives live, without a sequence, exactly once.
  sender.send(new Message(0, { to: 'zoe', n: 6 }, 'SEND_TO'))
  await until(() => ofType(zoe, 'SYNCED').length >= 6, 2000, 'the live SYNCED n=6')
  await sleep(100)
  const all = ofType(zoe, 'SYNCED')
  expectEqual(all.length, 6, 'SYNCED messages received by zoe')
  expectEqual(all[5].data, { n: 6 }, 'live message data')
  expectEqual(all[5].sequence, undefined, 'live message sequence')
  expectEqual(zoe.closes.concat(sender.closes), [], 'disconnections')
})

scenario('f: authentication with token "bad" closes the Client with 1008', 5000, async () => {
  const c = makeClient('f')
  await open(c)
  let resolved = false
  c.authenticate({ token: 'bad' }).then(() => { resolved = true })
  await until(() => c.closes.length > 0, 3000, 'the close after a failed authentication')
  expectEqual(c.closes[0].code, 1008, 'close code')
  check(c.closes[0].info && c.closes[0].info.willAttemptReconnect === true,
    'the Client does not plan to reconnect although the hello had c_reconnect_interval')
  await sleep(50)
  check(!resolved, 'authenticate() resolved for a bad token')
  check(!c.frames.some(f => f.json && f.json.op === 22), 'op 22 received for a bad token')
  check(c.authenticated === false, 'Client.authenticated is true')
})

scenario('g: PING/PONG for an authenticated Client; ECHO_ALL reaches two Clients', 5000, async () => {
  const gus = makeClient('g-gus')
  const hal = makeClient('g-hal')
  await open(gus)
  await open(hal)
  await gus.authenticate({ token: 'gus' })
  await hal.authenticate({ token: 'hal' })
  const ping = { n: 7, text: 'héllo', nested: { list: [1, 'two', null] } }
  gus.send(new Message(0, ping, 'PING'))
  await until(() => ofType(gus, 'PONG').length === 1, 2000, 'gus\'s PONG')
  expectEqual(ofType(gus, 'PONG')[0].data, ping, 'PONG data')
  check(ofType(hal, 'PONG').length === 0, 'hal received gus\'s PONG')

  gus.send(new Message(0, { from: 'gus' }, 'ECHO_ALL'))
  await until(() => ofType(gus, 'ECHO_ALL').length >= 1 && ofType(hal, 'ECHO_ALL').length >= 1, 2000,
    'ECHO_ALL at both Clients')
  await sleep(100)
  for (const c of [gus, hal]) {
    expectEqual(ofType(c, 'ECHO_ALL').map(m => m.data), [{ from: 'gus' }], `ECHO_ALL received by ${c.label}`)
    expectEqual(ofType(c, 'ECHO_ALL')[0].sequence, undefined, `ECHO_ALL sequence at ${c.label}`)
  }
  expectEqual(gus.closes.concat(hal.closes), [], 'disconnections')
})

scenario('h: after a server close the Client reconnects by itself (c_reconnect_interval)', 15000, async () => {
  const c = makeClient('h', { allowReconnect: true })
  await open(c)
  c.authenticate({ token: 'bad' })
  await until(() => c.closes.length === 1, 3000, 'the 1008 close')
  const closedAt = c.closes[0].at
  await until(() => c.connects.length === 2 && hellos(c).length === 2, RECONNECT_MS * 4, 'the automatic reconnection')
  const waited = Date.now() - closedAt
  check(waited >= RECONNECT_MS * 0.8, `reconnected after ${waited} ms, before c_reconnect_interval (${RECONNECT_MS})`)
  check(c.connects[1].isAutomaticReconnection === true, 'the second connection is not flagged automatic')
  c.allowReconnect = false
  // The new connection works: heartbeats are answered, PING gets its PONG.
  c.send(new Message(0, { again: true }, 'PING'))
  await until(() => ofType(c, 'PONG').length === 1, 2000, 'the PONG on the new connection')
  const beats = () => c.frames.filter(f => f.json && f.json.op === 1).length
  const before = beats()
  await until(() => beats() >= before + 4 || c.closes.length > 1, 10000, 'four heartbeats on the new connection')
  expectEqual(c.closes.length, 1, 'disconnections after the reconnection')
})

// ---- main ----------------------------------------------------------------
async function main () {
  const port = await startServer()
  url = `ws://127.0.0.1:${port}/`
  for (const s of scenarios) {
    let timer
    try {
      await Promise.race([
        s.fn(),
        new Promise((resolve, reject) => {
          timer = setTimeout(() => reject(new Error(`scenario timed out after ${s.ms} ms`)), s.ms)
        })
      ])
    } catch (err) {
      clearTimeout(timer)
      return die(`${s.name}: ${err && err.message ? err.message : err}`)
    } finally {
      clearTimeout(timer)
    }
    await closeAll()
    process.stdout.write(`ok - ${s.name}\n`)
  }
  exit(0, `interop-features ok (${scenarios.length} scenarios)`)
}

main().catch(err => die(err && err.stack ? err.stack : String(err)))
