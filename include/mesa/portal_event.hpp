#pragma once
// What servers tell portals on the `portal` channel:
//   {"type": "connection"|"authentication"|"message"|"disconnection",
//    "clientId"?, "message"?, "portalId"}
#include <boost/json.hpp>

#include <optional>
#include <string>
#include <string_view>

#include <mesa/message.hpp>
#include <mesa/parse.hpp>

namespace mesa {

struct portal_event {
    std::string type;
    std::optional<std::string> client_id;
    std::optional<message> msg;  // for "message"
    std::string portal_id;       // the portal chosen to handle it
};

inline std::string serialize(portal_event const& e) {
    std::string out = "{\"type\":";
    detail::append_json_string(out, e.type);
    if (e.client_id) {
        out += ",\"clientId\":";
        detail::append_json_string(out, *e.client_id);
    }
    if (e.msg) {
        out += ",\"message\":";
        append_json(out, *e.msg, audience::client);
    }
    out += ",\"portalId\":";
    detail::append_json_string(out, e.portal_id);
    out += '}';
    return out;
}

/// Parses a `portal` publication; false (and why) when malformed.
inline bool parse_portal_event(std::string_view text, portal_event& out, std::string& error) {
    json::value v;
    if (!parse_json(text, v, error) || !v.is_object()) {
        error = "portal event is not a JSON object";
        return false;
    }
    auto& o = v.get_object();
    auto const* type = o.if_contains("type");
    if (!type || !type->is_string()) {
        error = "portal event without a string \"type\"";
        return false;
    }
    out.type = std::string(type->get_string());
    if (auto const* id = o.if_contains("clientId"); id && id->is_string())
        out.client_id = std::string(id->get_string());
    if (auto const* pid = o.if_contains("portalId"); pid && pid->is_string())
        out.portal_id = std::string(pid->get_string());
    if (auto* m = o.if_contains("message"); m && !m->is_null()) {
        auto parsed = to_message(std::move(*m));
        if (!parsed) {
            error = "portal event: " + parsed.error().reason;
            return false;
        }
        out.msg = std::move(parsed.value());
    }
    return true;
}

/// The pool announcement `{"id", "ready"}` on `available_portals_pool`.
inline std::string serialize_portal_presence(std::string const& id, bool ready) {
    return json::serialize(json::object{{"id", id}, {"ready", ready}});
}

}  // namespace mesa
