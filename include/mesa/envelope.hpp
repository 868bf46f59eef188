#pragma once
// The publication on the `ws` channel: a message and who should get it.
//   {"message": {op,d,t[,o]}, "recipients": ["*"] or [ids], "excluding"?: [ids]}
// `excluding` (sends to everyone but some ids), `origin` (the publishing
// server, which already delivered to its own clients) and `seq` (the
// message's number in its recipients' outboxes, as a decimal string) are our
// additions; Node servers ignore them.
#include <boost/json.hpp>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <mesa/message.hpp>
#include <mesa/parse.hpp>

namespace mesa {

struct envelope {
    message msg;
    std::vector<std::string> recipients;  // {"*"}: everyone
    std::vector<std::string> excluding;
    std::string origin;    // id of the publishing server instance; empty from dispatchers
    std::int64_t seq = 0;  // its number in the recipients' outboxes (lossless sync); 0: none

    bool to_everyone() const { return std::find(recipients.begin(), recipients.end(), "*") != recipients.end(); }
};

/// Recipients are a set: each id once, in the order first given; any "*"
/// makes them `{"*"}` (everyone, once).
inline void normalize_recipients(std::vector<std::string>& ids) {
    if (std::find(ids.begin(), ids.end(), "*") != ids.end()) {
        ids = {"*"};
        return;
    }
    if (ids.size() < 2) return;
    std::unordered_set<std::string_view> seen;
    std::vector<std::string> unique;
    unique.reserve(ids.size());  // no reallocation: `seen` views the strings in `unique`
    for (auto& id : ids) {
        if (seen.count(id)) continue;
        unique.push_back(std::move(id));
        seen.insert(unique.back());
    }
    ids = std::move(unique);
}

/// The envelope of a send to `ids` (`{"*"}`: everyone) minus `excluding`,
/// each recipient once. Its recipients are empty when nobody is left.
inline envelope addressed(message const& m, std::vector<std::string> ids, std::vector<std::string> const& excluding) {
    envelope e{m, std::move(ids), {}, {}};
    normalize_recipients(e.recipients);
    if (e.to_everyone()) {
        e.recipients = {"*"};
        e.excluding = excluding;
        return e;
    }
    auto& r = e.recipients;
    r.erase(std::remove_if(
                r.begin(), r.end(),
                [&](auto const& id) { return std::find(excluding.begin(), excluding.end(), id) != excluding.end(); }),
            r.end());
    return e;
}

/// Whether a send to ids should be kept for the offline ones (`o.sync`).
inline bool wants_sync(message const& m) { return !(m.sync && !*m.sync); }

inline std::string serialize(envelope const& e) {
    std::string out = "{\"message\":";
    append_json(out, e.msg, audience::service);
    auto const list = [&](char const* name, std::vector<std::string> const& ids) {
        out += name;
        char sep = '[';
        for (auto const& id : ids) {
            out += sep;
            sep = ',';
            detail::append_json_string(out, id);
        }
        out += ids.empty() ? "[]" : "]";
    };
    list(",\"recipients\":", e.recipients);
    if (!e.excluding.empty()) list(",\"excluding\":", e.excluding);
    if (!e.origin.empty()) {
        out += ",\"origin\":";
        detail::append_json_string(out, e.origin);
    }
    if (e.seq > 0) {
        out += ",\"seq\":\"";
        out += std::to_string(e.seq);
        out += '"';
    }
    out += '}';
    return out;
}

namespace detail {
inline bool string_list(json::value const* v, std::vector<std::string>& out) {
    if (!v) return true;
    if (!v->is_array()) return false;
    for (auto const& item : v->get_array()) {
        if (!item.is_string()) return false;
        out.emplace_back(item.get_string());
    }
    return true;
}
}  // namespace detail

/// Parses a `ws` publication; on failure returns false and says why.
inline bool parse_envelope(std::string_view text, envelope& out, std::string& error) {
    json::value v;
    if (!parse_json(text, v, error) || !v.is_object()) {
        error = "ws publication is not a JSON object";
        return false;
    }
    auto& o = v.get_object();
    auto* m = o.if_contains("message");
    if (!m) {
        error = "ws publication without \"message\"";
        return false;
    }
    auto parsed = to_message(std::move(*m));
    if (!parsed) {
        error = "ws publication: " + parsed.error().reason;
        return false;
    }
    out.msg = std::move(parsed.value());
    auto* recipients = o.if_contains("recipients");
    if (!recipients) {
        out.recipients = {"*"};
    } else if (!detail::string_list(recipients, out.recipients)) {
        error = "ws publication: \"recipients\" must be an array of strings";
        return false;
    }
    normalize_recipients(out.recipients);  // a Node Dispatcher may repeat ids
    if (!detail::string_list(o.if_contains("excluding"), out.excluding)) {
        error = "ws publication: \"excluding\" must be an array of strings";
        return false;
    }
    if (auto const* origin = o.if_contains("origin"); origin && origin->is_string())
        out.origin = std::string(origin->get_string());
    if (auto const* seq = o.if_contains("seq"); seq && seq->is_string()) {
        auto const& text = seq->get_string();
        std::from_chars(text.data(), text.data() + text.size(), out.seq);
    }
    return true;
}

}  // namespace mesa
