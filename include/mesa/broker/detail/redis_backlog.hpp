#pragma once
// The undelivered_messages storage format shared with the Node reference: a
// hash whose field (a user id) holds a JSON array of message objects, read and
// written whole with HGET/HSET by Node servers and dispatchers. Ours appends
// and takes atomically with Lua scripts instead of read-modify-write.
#include <boost/json.hpp>

#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <mesa/broker/detail/redis_error.hpp>

namespace mesa::broker::detail {

// KEYS[1] hash, ARGV[1] field, ARGV[2] message (JSON text), ARGV[3] max entries
// (0: unbounded). Returns how many of the oldest entries were dropped.
// The message is decoded so that the array holds objects, as Node writes them.
// cjson re-encodes every element: keys may come back in another order, which
// is semantically identical JSON; beware two lossy corners of Redis' cjson
// though: an empty array nested in a message comes back as {} and numbers keep
// 14 significant digits.
inline constexpr std::string_view backlog_append_script = R"lua(
local ok, message = pcall(cjson.decode, ARGV[2])
if not ok then return redis.error_reply('ERR mesa: the message is not JSON') end
local list = {}
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if raw then
  local valid, decoded = pcall(cjson.decode, raw)
  if not valid or type(decoded) ~= 'table' or not (raw:match('^%s*%[') or raw:match('^%s*{%s*}%s*$')) then
    return redis.error_reply('ERR mesa: the stored backlog is not a JSON array')
  end
  list = decoded
end
list[#list + 1] = message
local max = tonumber(ARGV[3])
local dropped = 0
if max > 0 and #list > max then
  dropped = #list - max
  local kept = {}
  for i = dropped + 1, #list do kept[#kept + 1] = list[i] end
  list = kept
end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(list))
return dropped
)lua";

// KEYS[1] hash, ARGV[1] field. Returns the stored text (nil when none) and
// deletes it, unless it is not JSON: then it stays for inspection.
inline constexpr std::string_view backlog_take_script = R"lua(
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return false end
if not pcall(cjson.decode, raw) then
  return redis.error_reply('ERR mesa: the stored backlog is not JSON')
end
redis.call('HDEL', KEYS[1], ARGV[1])
return raw
)lua";

/// Splits a stored backlog (a JSON array) into the JSON texts of its elements.
/// `{}` counts as empty: that is how cjson encodes an empty array.
inline std::error_code split_backlog(std::string_view stored, std::vector<std::string>& out) {
    boost::system::error_code ec;
    auto const value = boost::json::parse(stored, ec);
    if (ec) return redis_errc::bad_backlog;
    if (auto const* object = value.if_object()) return object->empty() ? std::error_code() : redis_errc::bad_backlog;
    auto const* array = value.if_array();
    if (!array) return redis_errc::bad_backlog;
    out.reserve(out.size() + array->size());
    for (auto const& element : *array) out.push_back(boost::json::serialize(element));
    return {};
}

}  // namespace mesa::broker::detail
