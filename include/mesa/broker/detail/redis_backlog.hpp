#pragma once
// The undelivered_messages storage format shared with the Node reference: a
// hash whose field (a user id) holds a JSON array of message objects, read and
// written whole with HGET/HSET by Node servers and dispatchers. Ours appends
// and takes atomically with Lua scripts (redis_scripts.hpp) that splice the
// text; taking splits the array text back into the exact element texts.
#include <boost/json.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <mesa/broker/detail/redis_error.hpp>

namespace mesa::broker::detail {

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
