#pragma once
// The undelivered_messages storage format shared with the Node reference: a
// hash whose field (a user id) holds a JSON array of message objects, read and
// written whole with HGET/HSET by Node servers and dispatchers. Ours appends
// and takes atomically with Lua scripts instead of read-modify-write.
//
// Messages are stored byte for byte as given: the scripts splice JSON text
// (cjson only validates, nothing is ever re-encoded, so no key reordering, no
// `[]` turning into `{}`, no number rounded to 14 digits), and take splits the
// array text back into the exact element texts.
#include <boost/json.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <mesa/broker/detail/redis_error.hpp>

namespace mesa::broker::detail {

// KEYS[1] hash, ARGV[1] field, ARGV[2] message (JSON text), ARGV[3] max entries
// (0: unbounded), ARGV[4] '1' to put the message first (a redelivery cut
// short puts back what it did not send) instead of last. Returns how many of
// the oldest entries were dropped.
//
// The message text is spliced into the stored array text: nothing stored (or
// `[]`, or the `{}` cjson writes for an empty array) becomes `[message]`,
// otherwise the final `]` becomes `,message]`. Since the text goes in verbatim
// it must be JSON that Node's JSON.parse accepts: cjson.decode checks its
// structure, and `strict` refuses what cjson tolerates but JSON does not
// (NaN, Infinity, hex, leading zeros or `+` in numbers, raw control characters
// in strings), which would otherwise make the whole backlog unreadable. The
// stored value must be a JSON array (cjson.decode, first character `[`); its
// element count comes from that decode. Past the bound, the oldest elements
// are cut off the text at the top-level comma found by `top_comma`, a scanner
// tracking [ ] { } depth and skipping string contents (backslash escapes
// included).
inline constexpr std::string_view backlog_append_script = R"lua(
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
local function top_comma(s, n)
  local depth, pos = 0, 1
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
    elseif c == '[' or c == '{' then depth = depth + 1
    elseif c == ']' or c == '}' then depth = depth - 1
    elseif depth == 1 then
      n = n - 1
      if n == 0 then return at end
    end
  end
end
local message = ARGV[2]
if not pcall(cjson.decode, message) or not strict(message) then
  return redis.error_reply('ERR mesa: the message is not JSON')
end
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local text, count
if not raw or raw:match('^%s*%[%s*%]%s*$') or raw:match('^%s*{%s*}%s*$') then
  text, count = '[' .. message .. ']', 1
else
  local valid, decoded = pcall(cjson.decode, raw)
  local close = raw:match('()%]%s*$')
  if not valid or type(decoded) ~= 'table' or not raw:match('^%s*%[') or not close then
    return redis.error_reply('ERR mesa: the stored backlog is not a JSON array')
  end
  if ARGV[4] == '1' then
    text = '[' .. message .. ',' .. raw:sub(raw:find('%[') + 1)
  else
    text = raw:sub(1, close - 1) .. ',' .. message .. ']'
  end
  count = #decoded + 1
end
local max = tonumber(ARGV[3])
local dropped = 0
if max > 0 and count > max then
  dropped = count - max
  local cut = top_comma(text, dropped)
  if not cut then return redis.error_reply('ERR mesa: the stored backlog is not a JSON array') end
  text = '[' .. text:sub(cut + 1)
end
redis.call('HSET', KEYS[1], ARGV[1], text)
return dropped
)lua";

// KEYS[1] hash, ARGV[1] field. Returns the stored text (nil when none) and
// deletes it, unless it is not a JSON array (or cjson's `{}`): then it stays
// for inspection.
inline constexpr std::string_view backlog_take_script = R"lua(
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return false end
if not pcall(cjson.decode, raw) or not (raw:match('^%s*%[') or raw:match('^%s*{%s*}%s*$')) then
  return redis.error_reply('ERR mesa: the stored backlog is not a JSON array')
end
redis.call('HDEL', KEYS[1], ARGV[1])
return raw
)lua";

/// Splits a stored backlog (a JSON array) into the JSON texts of its elements,
/// byte for byte as stored (surrounding whitespace trimmed). `{}` counts as
/// empty: that is how cjson encodes an empty array.
inline std::error_code split_backlog(std::string_view stored, std::vector<std::string>& out) {
    boost::system::error_code ec;
    auto const value = boost::json::parse(stored, ec);  // validation only: the texts are cut from `stored`
    if (ec) return redis_errc::bad_backlog;
    if (auto const* object = value.if_object()) return object->empty() ? std::error_code() : redis_errc::bad_backlog;
    auto const* array = value.if_array();
    if (!array) return redis_errc::bad_backlog;
    out.reserve(out.size() + array->size());
    auto const is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
    auto const push = [&](std::size_t from, std::size_t to) {
        while (from < to && is_space(stored[from])) ++from;
        while (to > from && is_space(stored[to - 1])) --to;
        if (from < to) out.emplace_back(stored.substr(from, to - from));
    };
    // Valid JSON: scan for the top-level commas, skipping strings.
    std::size_t depth = 0, start = 0;
    for (std::size_t i = 0; i < stored.size(); ++i) {
        switch (stored[i]) {
            case '"':
                for (++i; stored[i] != '"'; ++i)
                    if (stored[i] == '\\') ++i;
                break;
            case '[':
            case '{':
                if (++depth == 1) start = i + 1;
                break;
            case ']':
            case '}':
                if (--depth == 0) push(start, i);
                break;
            case ',':
                if (depth == 1) {
                    push(start, i);
                    start = i + 1;
                }
                break;
            default:
                break;
        }
    }
    return {};
}

}  // namespace mesa::broker::detail
