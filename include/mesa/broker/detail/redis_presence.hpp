#pragma once
// Exact presence on Redis: the Lua scripts behind broker::redis's presence_*
// operations (see broker/requirements.hpp for their contract).
//
// Every script takes the same KEYS, from mesa::keys:
//   1 connected_clients          set, Node's schema: moved only on 0 <-> 1 of an id's count
//   2 connected_clients_count    integer, Node's schema: every open connection of the cluster
//   3 mesa_presence              hash id -> its open sockets in the cluster
//   4 mesa_instances             hash instance -> registration epoch (the fencing token)
//   5 mesa_instance_connections  hash instance -> its share of connected_clients_count
//   6 mesa_epoch                 counter of registrations
// and ARGV[1] = the namespace suffix, from which the per-instance keys
// `mesa_sockets:<instance><suffix>` (hash id -> sockets there) and
// `mesa_alive:<instance><suffix>` (expires unless renewed) are built. The
// scripts touch keys they compute, so they need one Redis (or a Sentinel
// deployment), not Redis Cluster.
#include <string_view>

namespace mesa::broker::detail {

// Shared by the scripts: withdraw(instance) takes an instance's whole
// contribution out of the cluster's state (its ids, its connections, its
// registration), as if all its sockets had closed.
#define MESA_PRESENCE_LUA_PRELUDE                                                      \
    "local suffix = ARGV[1]\n"                                                          \
    "local function sockets_of(i) return 'mesa_sockets:' .. i .. suffix end\n"          \
    "local function alive_of(i) return 'mesa_alive:' .. i .. suffix end\n"              \
    "local function withdraw(i)\n"                                                      \
    "  local list = redis.call('HGETALL', sockets_of(i))\n"                            \
    "  for k = 1, #list, 2 do\n"                                                        \
    "    if redis.call('HINCRBY', KEYS[3], list[k], -tonumber(list[k + 1])) <= 0 then\n" \
    "      redis.call('HDEL', KEYS[3], list[k])\n"                                      \
    "      redis.call('SREM', KEYS[1], list[k])\n"                                      \
    "    end\n"                                                                         \
    "  end\n"                                                                           \
    "  redis.call('DEL', sockets_of(i), alive_of(i))\n"                                 \
    "  local conns = tonumber(redis.call('HGET', KEYS[5], i) or '0')\n"                 \
    "  if conns ~= 0 then redis.call('DECRBY', KEYS[2], conns) end\n"                   \
    "  redis.call('HDEL', KEYS[5], i)\n"                                                \
    "  redis.call('HDEL', KEYS[4], i)\n"                                                \
    "end\n"

// ARGV: suffix, instance, ttl ms, connections, then (id, sockets) pairs.
// Replaces the instance's contribution by the one given and registers it
// under a new epoch, which it returns.
inline constexpr std::string_view presence_register_script = MESA_PRESENCE_LUA_PRELUDE R"lua(
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
)lua";

// ARGV: suffix, instance, epoch, connections delta, id ('' for none), id's
// sockets delta. Returns -1 when the epoch is not the instance's current one
// (it was reaped: nothing changes), else the id's sockets in the cluster
// after the change (0 without an id).
inline constexpr std::string_view presence_change_script = MESA_PRESENCE_LUA_PRELUDE R"lua(
local instance = ARGV[2]
if redis.call('HGET', KEYS[4], instance) ~= ARGV[3] then return -1 end
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
  redis.call('HDEL', KEYS[3], id)
  redis.call('SREM', KEYS[1], id)
  return 0
end
if delta > 0 then redis.call('SADD', KEYS[1], id) end
return total
)lua";

// ARGV: suffix, instance, epoch, ttl ms. Extends the instance's liveness and
// puts its ids back into connected_clients (a Node server in the cluster
// removes an id on any of its own closes). Returns -1 when fenced, else 1.
inline constexpr std::string_view presence_renew_script = MESA_PRESENCE_LUA_PRELUDE R"lua(
local instance = ARGV[2]
if redis.call('HGET', KEYS[4], instance) ~= ARGV[3] then return -1 end
redis.call('SET', alive_of(instance), ARGV[3], 'PX', ARGV[4])
local ids = redis.call('HKEYS', sockets_of(instance))
for k = 1, #ids, 1000 do
  redis.call('SADD', KEYS[1], unpack(ids, k, math.min(k + 999, #ids)))
end
return 1
)lua";

// ARGV: suffix. Withdraws every registered instance whose liveness key has
// expired; returns their ids.
inline constexpr std::string_view presence_reap_script = MESA_PRESENCE_LUA_PRELUDE R"lua(
local reaped = {}
local list = redis.call('HGETALL', KEYS[4])
for k = 1, #list, 2 do
  if redis.call('EXISTS', alive_of(list[k])) == 0 then
    withdraw(list[k])
    reaped[#reaped + 1] = list[k]
  end
end
return reaped
)lua";

// ARGV: suffix, instance, epoch. Withdraws the instance (it stops) when the
// epoch is still its own; returns 1, or -1 when fenced.
inline constexpr std::string_view presence_withdraw_script = MESA_PRESENCE_LUA_PRELUDE R"lua(
if redis.call('HGET', KEYS[4], ARGV[2]) ~= ARGV[3] then return -1 end
withdraw(ARGV[2])
return 1
)lua";

#undef MESA_PRESENCE_LUA_PRELUDE

}  // namespace mesa::broker::detail
