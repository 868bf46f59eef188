#pragma once
// The Mesa message: one JSON object per WebSocket text frame.
//
//   mesa::message m{"NEW_MESSAGE", {{"text", "hi"}}};
//   std::string frame = mesa::serialize(m);
#include <boost/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
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

/// The frame text of `m`; call once per send, whatever the number of recipients.
inline std::string serialize(message const& m, audience to = audience::client) {
    return json::serialize(to_json(m, to));
}

}  // namespace mesa
