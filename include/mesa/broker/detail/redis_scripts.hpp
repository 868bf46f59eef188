#pragma once
// The Lua scripts of broker::redis: one atomic step each for backlogs, exact
// presence, lossless sync and idempotent sends (see broker/requirements.hpp for what each
// operation promises). Every script is the shared library below followed by
// its body; broker::redis loads them once per connection and runs them with
// EVALSHA.
//
// Backlogs (`undelivered_messages`, Node's format: a hash whose field, a user
// id, holds a JSON array of message objects, read and written whole by Node
// servers and dispatchers) are spliced as text: cjson only validates, nothing
// is re-encoded, so messages keep their exact bytes (no key reordering, no
// `[]` turning into `{}`, no number rounded to 14 digits). Since text goes in
// verbatim it must be JSON that Node's JSON.parse accepts: `strict` refuses
// what cjson tolerates but JSON does not (NaN, Infinity, hex, leading zeros or
// `+` in numbers, raw control characters in strings). Past a bound, the oldest
// elements are cut off at the top-level comma found by `top_comma`, a scanner
// tracking [ ] { } depth and skipping string contents.
//
// The cluster scripts take the same KEYS (cluster_keys() of broker::redis):
//   1 connected_clients           set, Node's: moved only on 0 <-> 1 of an id's sockets
//   2 connected_clients_count     integer, Node's: every open connection of the cluster
//   3 mesa_presence               hash id -> its open sockets in the cluster
//   4 mesa_instances              hash instance -> registration epoch (the fencing token)
//   5 mesa_instance_connections   hash instance -> its share of connected_clients_count
//   6 mesa_epoch                  counter of registrations
//   7 undelivered_messages        Node's backlogs
//   8 mesa_seq                    counter numbering the messages of outboxes
//   9 mesa_attempts               hash id -> redeliveries not confirmed in a row
// and ARGV[1] = the namespace suffix, from which per-instance and per-id keys
// are built: `mesa_sockets:<instance>` (hash id -> sockets there),
// `mesa_alive:<instance>` (expires unless renewed) and `mesa_outbox:<id>`
// (hash seq -> message sent to an online id's sockets and not yet confirmed;
// seqs are zero-padded, so they sort as text). An idempotency key
// (mesa::keys::idempotency) is a string with a time to live holding
// `~<token>` while an attempt is in flight and `=<result>` once it was taken. Scripts touching keys they
// compute need one Redis (or a Sentinel deployment), not Redis Cluster.
#include <array>
#include <cstddef>
#include <string>
#include <string_view>

namespace mesa::broker::detail {

inline constexpr std::string_view redis_lua_library = R"lua(
local suffix = ''
local function is_number(t)
  local j = t:match('^0()', t:match('^%-?()')) or t:match('^%-?[1-9]%d*()')
  if not j then return false end
  j = t:match('^%.%d+()', j) or j
  j = t:match('^[eE][%+%-]?%d+()', j) or j
  return j == #t + 1
end
local function strict(s)
  local pos = 1
  while true do
    local at = s:find('[^ \t\n\r%[%]{}:,]', pos)
    if not at then return true end
    if s:byte(at) == 34 then
      local q = at + 1
      while true do
        local e, _, c = s:find('([%z\1-\31"\\])', q)
        if not e or c < ' ' then return false end
        if c == '"' then pos = e + 1; break end
        q = e + 2
      end
    else
      local t = s:match('^[^ \t\n\r%[%]{}:,"]+', at)
      if not (t == 'true' or t == 'false' or t == 'null' or is_number(t)) then return false end
      pos = at + #t
    end
  end
end
local function is_json(message) return pcall(cjson.decode, message) and strict(message) end
-- Calls visit(first, last) for each top-level element of the array text s
-- (positions of its text), or for the first n top-level commas' positions
-- when n is given; returns the position of the n-th comma.
local function scan(s, visit, n)
  local depth, pos, start = 0, 1, nil
  while true do
    local at, _, c = s:find('([%[%]{}",])', pos)
    if not at then return nil end
    pos = at + 1
    if c == '"' then
      while true do
        local e, _, d = s:find('(["\\])', pos)
        if not e then return nil end
        if d == '"' then pos = e + 1; break end
        pos = e + 2
      end
    elseif c == '[' or c == '{' then
      depth = depth + 1
      if depth == 1 then start = at + 1 end
    elseif c == ']' or c == '}' then
      depth = depth - 1
      if depth == 0 then
        if visit then visit(start, at - 1) end
        return nil
      end
    elseif depth == 1 then
      if n then
        n = n - 1
        if n == 0 then return at end
      end
      if visit then visit(start, at - 1) end
      start = at + 1
    end
  end
end
local function top_comma(s, n) return scan(s, nil, n) end
local function elements(s)
  local out = {}
  scan(s, function(a, b)
    local e = s:sub(a, b):match('^%s*(.-)%s*$')
    if e ~= '' then out[#out + 1] = e end
  end)
  return out
end
local function empty_array(raw)
  return not raw or raw:match('^%s*%[%s*%]%s*$') or raw:match('^%s*{%s*}%s*$')
end
local not_an_array = 'ERR mesa: the stored backlog is not a JSON array'
-- Splices `items` (n elements, comma-joined JSON texts) into the array under
-- hash/field, first or last, dropping the oldest past max (0: no bound).
-- Returns how many were dropped, or nil and an error.
local function append(hash, field, items, n, max, first)
  local raw = redis.call('HGET', hash, field)
  local text, count
  if empty_array(raw) then
    text, count = '[' .. items .. ']', n
  else
    local valid, decoded = pcall(cjson.decode, raw)
    local close = raw:match('()%]%s*$')
    if not valid or type(decoded) ~= 'table' or not raw:match('^%s*%[') or not close then return nil, not_an_array end
    if first then
      text = '[' .. items .. ',' .. raw:sub(raw:find('%[') + 1)
    else
      text = raw:sub(1, close - 1) .. ',' .. items .. ']'
    end
    count = #decoded + n
  end
  local dropped = 0
  if max > 0 and count > max then
    dropped = count - max
    local cut = top_comma(text, dropped)
    if not cut then return nil, not_an_array end
    text = '[' .. text:sub(cut + 1)
  end
  redis.call('HSET', hash, field, text)
  return dropped
end
local function sockets_of(i) return 'mesa_sockets:' .. i .. suffix end
local function alive_of(i) return 'mesa_alive:' .. i .. suffix end
local function outbox_of(id) return 'mesa_outbox:' .. id .. suffix end
local function next_seq() return string.format('%016d', redis.call('INCR', KEYS[8])) end
-- The id's last socket is gone: what its sockets were sent and did not
-- confirm goes back, in order, before anything in its backlog.
local function requeue(id)
  local list = redis.call('HGETALL', outbox_of(id))
  if #list == 0 then return end
  local seqs, texts = {}, {}
  for k = 1, #list, 2 do
    seqs[#seqs + 1] = list[k]
    texts[list[k]] = list[k + 1]
  end
  table.sort(seqs)
  local ordered = {}
  for k = 1, #seqs do ordered[k] = texts[seqs[k]] end
  if append(KEYS[7], id, table.concat(ordered, ','), #ordered, 0, true) then redis.call('DEL', outbox_of(id)) end
end
local function offline(id)
  redis.call('HDEL', KEYS[3], id)
  redis.call('SREM', KEYS[1], id)
  requeue(id)
end
-- Takes an instance's whole contribution out of the cluster's state (its
-- ids, its connections, its registration), as if all its sockets had closed.
local function withdraw(i)
  local list = redis.call('HGETALL', sockets_of(i))
  for k = 1, #list, 2 do
    if redis.call('HINCRBY', KEYS[3], list[k], -tonumber(list[k + 1])) <= 0 then offline(list[k]) end
  end
  redis.call('DEL', sockets_of(i), alive_of(i))
  local conns = tonumber(redis.call('HGET', KEYS[5], i) or '0')
  if conns ~= 0 then redis.call('DECRBY', KEYS[2], conns) end
  redis.call('HDEL', KEYS[5], i)
  redis.call('HDEL', KEYS[4], i)
end
local function registered(i, epoch) return redis.call('HGET', KEYS[4], i) == epoch end
-- Store-or-deliver of one message (sync_route) to the ids ARGV[first..].
local function route(channel, message, max, origin, first)
  local seq = next_seq()
  local published, stored, dropped, failed = {}, {}, {}, {}
  for k = first, #ARGV do
    local id = ARGV[k]
    local ours = tonumber(redis.call('HGET', KEYS[3], id) or '0') > 0
    if ours or redis.call('SISMEMBER', KEYS[1], id) == 1 then
      published[#published + 1] = id
      if ours then
        local box = outbox_of(id)
        redis.call('HSET', box, seq, message)
        local n = redis.call('HLEN', box)
        if max > 0 and n > max then
          local seqs = redis.call('HKEYS', box)
          table.sort(seqs)
          for j = 1, n - max do redis.call('HDEL', box, seqs[j]) end
          dropped[#dropped + 1] = id
          dropped[#dropped + 1] = n - max
        end
      end
    else
      local d = append(KEYS[7], id, message, 1, max, false)
      if not d then
        failed[#failed + 1] = id
      else
        stored[#stored + 1] = id
        if d > 0 then
          dropped[#dropped + 1] = id
          dropped[#dropped + 1] = d
        end
      end
    end
  end
  if #published > 0 then
    redis.call('PUBLISH', channel, '{"message":' .. message .. ',"recipients":' .. cjson.encode(published) ..
      ',"origin":' .. cjson.encode(origin) .. ',"seq":"' .. seq .. '"}')
  end
  return {seq, published, stored, dropped, failed}
end
-- The idempotency key: {'done', result} when an attempt with it was taken,
-- {'in_flight'} while one holds it; else it is claimed for `token` until
-- `ttl` ms pass and nil is returned.
local function claim(key, token, ttl)
  local held = redis.call('GET', key)
  if held then
    if held:sub(1, 1) == '=' then return {'done', held:sub(2)} end
    return {'in_flight'}
  end
  redis.call('SET', key, '~' .. token, 'PX', ttl)
  return nil
end
)lua";

/// The scripts, in the order of redis_script_bodies.
enum class redis_script : std::size_t {
    backlog_append,
    backlog_take,
    presence_register,
    presence_change,
    presence_renew,
    presence_reap,
    presence_withdraw,
    sync_route,
    sync_take,
    sync_confirm,
    presence_admit,
    presence_query,
    idempotent_route,
    idempotent_publish,
    idempotency_settle,
    idempotency_release,
    count
};

inline constexpr std::array<std::string_view, static_cast<std::size_t>(redis_script::count)> redis_script_bodies{
    // backlog_append: KEYS[1] hash; ARGV field, message, max entries (0: no
    // bound). Returns how many of the oldest were dropped.
    R"lua(
if not is_json(ARGV[2]) then return redis.error_reply('ERR mesa: the message is not JSON') end
local dropped, err = append(KEYS[1], ARGV[1], ARGV[2], 1, tonumber(ARGV[3]), false)
if not dropped then return redis.error_reply(err) end
return dropped
)lua",
    // backlog_take: KEYS[1] hash; ARGV field. Returns the stored text (nil when
    // none) and deletes it, unless it is not a JSON array: then it stays.
    R"lua(
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return false end
if not pcall(cjson.decode, raw) or not (raw:match('^%s*%[') or raw:match('^%s*{%s*}%s*$')) then
  return redis.error_reply(not_an_array)
end
redis.call('HDEL', KEYS[1], ARGV[1])
return raw
)lua",
    // presence_register: ARGV suffix, instance, ttl ms, connections, then
    // (id, sockets) pairs. Replaces the instance's contribution, registers it
    // under a new epoch and returns it.
    R"lua(
suffix = ARGV[1]
local instance = ARGV[2]
withdraw(instance)
local epoch = redis.call('INCR', KEYS[6])
redis.call('HSET', KEYS[4], instance, epoch)
redis.call('SET', alive_of(instance), epoch, 'PX', ARGV[3])
local conns = tonumber(ARGV[4])
if conns ~= 0 then
  redis.call('INCRBY', KEYS[2], conns)
  redis.call('HSET', KEYS[5], instance, conns)
end
for k = 5, #ARGV, 2 do
  local n = tonumber(ARGV[k + 1])
  redis.call('HINCRBY', sockets_of(instance), ARGV[k], n)
  redis.call('HINCRBY', KEYS[3], ARGV[k], n)
  redis.call('SADD', KEYS[1], ARGV[k])
end
return epoch
)lua",
    // presence_change: ARGV suffix, instance, epoch, connections delta, id
    // ('' for none), the id's sockets delta. Returns -1 when fenced (nothing
    // changes), else the id's sockets in the cluster afterwards (0 without id).
    R"lua(
suffix = ARGV[1]
local instance = ARGV[2]
if not registered(instance, ARGV[3]) then return -1 end
local conns = tonumber(ARGV[4])
if conns ~= 0 then
  redis.call('INCRBY', KEYS[2], conns)
  redis.call('HINCRBY', KEYS[5], instance, conns)
end
local id, delta = ARGV[5], tonumber(ARGV[6])
if id == '' or delta == 0 then return 0 end
if redis.call('HINCRBY', sockets_of(instance), id, delta) <= 0 then redis.call('HDEL', sockets_of(instance), id) end
local total = redis.call('HINCRBY', KEYS[3], id, delta)
if total <= 0 then
  offline(id)
  return 0
end
if delta > 0 then redis.call('SADD', KEYS[1], id) end
return total
)lua",
    // presence_renew: ARGV suffix, instance, epoch, ttl ms. Extends the
    // liveness and puts the instance's ids back into connected_clients (a Node
    // server removes an id on any of its own closes). -1 when fenced, else 1.
    R"lua(
suffix = ARGV[1]
local instance = ARGV[2]
if not registered(instance, ARGV[3]) then return -1 end
redis.call('SET', alive_of(instance), ARGV[3], 'PX', ARGV[4])
local ids = redis.call('HKEYS', sockets_of(instance))
for k = 1, #ids, 1000 do
  redis.call('SADD', KEYS[1], unpack(ids, k, math.min(k + 999, #ids)))
end
return 1
)lua",
    // presence_reap: ARGV suffix. Withdraws every instance whose liveness
    // expired; returns their ids.
    R"lua(
suffix = ARGV[1]
local reaped = {}
local list = redis.call('HGETALL', KEYS[4])
for k = 1, #list, 2 do
  if redis.call('EXISTS', alive_of(list[k])) == 0 then
    withdraw(list[k])
    reaped[#reaped + 1] = list[k]
  end
end
return reaped
)lua",
    // presence_withdraw: ARGV suffix, instance, epoch. 1, or -1 when fenced.
    R"lua(
suffix = ARGV[1]
if not registered(ARGV[2], ARGV[3]) then return -1 end
withdraw(ARGV[2])
return 1
)lua",
    // sync_route: ARGV suffix, channel, message (JSON, service audience), max
    // backlog, origin, then the recipient ids. Store-or-deliver as one step:
    // an id with sockets on our instances gets the message in its outbox
    // (kept until confirmed) and published; an id only a Node server holds
    // gets it published; an offline id gets it appended to its backlog.
    // Returns {seq, published ids, stored ids, {id, dropped}..., failed ids}.
    R"lua(
suffix = ARGV[1]
if not is_json(ARGV[3]) then return redis.error_reply('ERR mesa: the message is not JSON') end
return route(ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], 6)
)lua",
    // sync_take: ARGV suffix, id, max attempts (0: no bound). Returns what a
    // socket of the id that just authenticated must be sent, oldest first:
    // the id's outbox (sent to its other sockets, or published to a gateway
    // that died or to a subscription being renewed, and not confirmed), then
    // its backlog, taken into the outbox under new seqs:
    // {'taken', n (outbox entries), seq, text, seq, text, ...}. When the id's
    // redeliveries went unconfirmed more than max attempts times in a row,
    // removes both instead and returns {'given_up', text, ...}.
    R"lua(
suffix = ARGV[1]
local id, limit = ARGV[2], tonumber(ARGV[3])
local list = redis.call('HGETALL', outbox_of(id))
local pending = {}
for k = 1, #list, 2 do pending[#pending + 1] = {list[k], list[k + 1]} end
table.sort(pending, function(a, b) return a[1] < b[1] end)
local items = {}
local raw = redis.call('HGET', KEYS[7], id)
if raw then
  if not pcall(cjson.decode, raw) or not (raw:match('^%s*%[') or raw:match('^%s*{%s*}%s*$')) then
    return redis.error_reply(not_an_array)
  end
  redis.call('HDEL', KEYS[7], id)
  items = elements(raw)
end
if #items == 0 and #pending == 0 then return {'taken', 0} end
local attempts = redis.call('HINCRBY', KEYS[9], id, 1)
if limit > 0 and attempts > limit then
  redis.call('HDEL', KEYS[9], id)
  redis.call('DEL', outbox_of(id))
  local out = {'given_up'}
  for k = 1, #pending do out[#out + 1] = pending[k][2] end
  for k = 1, #items do out[#out + 1] = items[k] end
  return out
end
local out = {'taken', #pending}
for k = 1, #pending do
  out[#out + 1] = pending[k][1]
  out[#out + 1] = pending[k][2]
end
for k = 1, #items do
  local seq = next_seq()
  redis.call('HSET', outbox_of(id), seq, items[k])
  out[#out + 1] = seq
  out[#out + 1] = items[k]
end
return out
)lua",
    // sync_confirm: ARGV suffix, id, then seqs. A socket of the id received
    // them: they leave its outbox, and its unconfirmed attempts start over.
    R"lua(
suffix = ARGV[1]
redis.call('HDEL', KEYS[9], ARGV[2])
if #ARGV < 3 then return 0 end
return redis.call('HDEL', outbox_of(ARGV[2]), unpack(ARGV, 3))
)lua",
    // presence_admit: ARGV suffix, instance, epoch, id, max sockets. One more
    // socket of the id on the instance, unless the id already holds max
    // sockets in the cluster: then -2 and nothing changes. -1 when fenced,
    // else the id's sockets in the cluster afterwards.
    R"lua(
suffix = ARGV[1]
local instance = ARGV[2]
if not registered(instance, ARGV[3]) then return -1 end
local id = ARGV[4]
if tonumber(redis.call('HGET', KEYS[3], id) or '0') >= tonumber(ARGV[5]) then return -2 end
redis.call('HINCRBY', sockets_of(instance), id, 1)
redis.call('SADD', KEYS[1], id)
return redis.call('HINCRBY', KEYS[3], id, 1)
)lua",
    // presence_query: ARGV suffix, then ids. For each id: its sockets in the
    // cluster; -1 when only Node's connected_clients holds it (a Node server's
    // client: online, count unknown); 0 when offline.
    R"lua(
local out = {}
for k = 2, #ARGV do
  local n = tonumber(redis.call('HGET', KEYS[3], ARGV[k]) or '0')
  if n <= 0 and redis.call('SISMEMBER', KEYS[1], ARGV[k]) == 1 then n = -1 end
  out[#out + 1] = n
end
return out
)lua",
    // idempotent_route: the cluster KEYS, then KEYS[10] the idempotency key;
    // ARGV suffix, channel, message, max backlog, origin, token, in-flight
    // ttl ms, then the recipient ids. sync_route, once the key is claimed in
    // the same step: {'claimed', <sync_route's reply>}, or what claim found.
    R"lua(
suffix = ARGV[1]
if not is_json(ARGV[3]) then return redis.error_reply('ERR mesa: the message is not JSON') end
local held = claim(KEYS[10], ARGV[6], ARGV[7])
if held then return held end
return {'claimed', route(ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], 8)}
)lua",
    // idempotent_publish: KEYS[1] the idempotency key; ARGV channel, payload,
    // token, in-flight ttl ms. PUBLISH, once the key is claimed in the same
    // step: {'claimed'}, or what claim found.
    R"lua(
local held = claim(KEYS[1], ARGV[3], ARGV[4])
if held then return held end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return {'claimed'}
)lua",
    // idempotency_settle: KEYS[1] the idempotency key; ARGV token, result,
    // ttl ms. Records the result, unless another attempt holds the key now
    // (this one's mark expired and a retry claimed it). 1 recorded, else 0.
    R"lua(
local held = redis.call('GET', KEYS[1])
if held and held ~= '~' .. ARGV[1] then return 0 end
redis.call('SET', KEYS[1], '=' .. ARGV[2], 'PX', ARGV[3])
return 1
)lua",
    // idempotency_release: KEYS[1] the idempotency key; ARGV token. Frees the
    // key if this attempt still holds it. 1 freed, else 0.
    R"lua(
if redis.call('GET', KEYS[1]) ~= '~' .. ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
)lua",
};

/// The whole text of a script: the library, then its body.
inline std::string const& redis_script_text(redis_script id) {
    static auto const texts = [] {
        std::array<std::string, static_cast<std::size_t>(redis_script::count)> out;
        for (std::size_t i = 0; i < out.size(); ++i)
            out[i] = std::string(redis_lua_library).append(redis_script_bodies[i]);
        return out;
    }();
    return texts[static_cast<std::size_t>(id)];
}

}  // namespace mesa::broker::detail
