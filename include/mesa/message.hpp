#pragma once
// The Mesa message: one JSON object per WebSocket text frame.
//
//   mesa::message m{"NEW_MESSAGE", {{"text", "hi"}}};
//   std::string frame = mesa::serialize(m);
#include <boost/json.hpp>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <mesa/opcode.hpp>

namespace mesa {

namespace json = boost::json;

/// One protocol message: `op`, `d` (always an object), and the optional `t`
/// (type), `s` (sequence of a redelivered message) and `o.sync` (options that
/// only travel between services). A plain value type.
struct message {
    int op = opcode::dispatch;
    json::object d;
    std::optional<std::string> t;
    std::optional<std::int64_t> s;
    std::optional<bool> sync;  // `o: {sync}`; never sent to a client

    message() = default;
    /// An application message (op 0) of type `type`.
    message(std::string type, json::object data) : d(std::move(data)), t(std::move(type)) {}
    message(int opcode, json::object data) : op(opcode), d(std::move(data)) {}

    friend bool operator==(message const& a, message const& b) {
        return a.op == b.op && a.d == b.d && a.t == b.t && a.s == b.s && a.sync == b.sync;
    }
    friend bool operator!=(message const& a, message const& b) { return !(a == b); }
};

/// Which fields to write: a client never sees `o`.
enum class audience { client, service };

/// The JSON object form of `m`.
inline json::object to_json(message const& m, audience to = audience::client) {
    json::object o;
    o.reserve(5);
    o.emplace("op", m.op);
    o.emplace("d", m.d);
    if (m.t) o.emplace("t", *m.t);
    if (m.s) o.emplace("s", *m.s);
    if (to == audience::service && m.sync) o.emplace("o", json::object{{"sync", *m.sync}});
    return o;
}

namespace detail {

/// Appends what `sr` writes to `out`, straight into its spare capacity.
inline void append_json(std::string& out, json::serializer& sr) {
    while (!sr.done()) {
        std::size_t const at = out.size();
        if (out.capacity() - at < 64) out.reserve(std::max<std::size_t>(2 * out.capacity(), at + 256));
        out.resize(out.capacity());
        auto const written = sr.read(&out[at], out.size() - at);
        out.resize(at + written.size());
    }
}

/// Appends the JSON text of `v` (a json::value, object or array) to `out`.
template <class T>
void append_json(std::string& out, T const& v) {
    json::serializer sr;
    sr.reset(&v);
    append_json(out, sr);
}

/// Appends `s` as a JSON string (quoted and escaped) to `out`.
inline void append_json_string(std::string& out, std::string_view s) {
    json::serializer sr;
    sr.reset(json::string_view(s.data(), s.size()));
    append_json(out, sr);
}

inline void append_json_int(std::string& out, std::int64_t v) {
    char digits[24];
    auto const end = std::to_chars(digits, digits + sizeof digits, v).ptr;
    out.append(digits, end);
}

}  // namespace detail

/// Appends the JSON text of `m` to `out`: the text of `to_json(m, to)`,
/// written without building that object (a send copies nothing of `m.d`).
inline void append_json(std::string& out, message const& m, audience to = audience::client) {
    out += "{\"op\":";
    detail::append_json_int(out, m.op);
    out += ",\"d\":";
    detail::append_json(out, m.d);
    if (m.t) {
        out += ",\"t\":";
        detail::append_json_string(out, *m.t);
    }
    if (m.s) {
        out += ",\"s\":";
        detail::append_json_int(out, *m.s);
    }
    if (to == audience::service && m.sync) out += *m.sync ? ",\"o\":{\"sync\":true}" : ",\"o\":{\"sync\":false}";
    out += '}';
}

/// The frame text of `m`; call once per send, whatever the number of recipients.
/// Its capacity is its size: a frame may wait in many slow clients' queues,
/// whose bound (max_backlog_bytes) counts bytes, not allocations.
inline std::string serialize(message const& m, audience to = audience::client) {
    thread_local std::string scratch;  // grown once per thread, not per message
    scratch.clear();
    append_json(scratch, m, to);
    std::string text(scratch);
    if (scratch.capacity() > (64u << 10)) std::string().swap(scratch);  // a large message keeps nothing
    return text;
}

}  // namespace mesa
