#pragma once
// The gateway's HTTP API, served on the WebSocket port (server.on_http):
//
//   POST /dispatch  {"message": {"op"?, "d"?, "t"?, "o"?}, "recipients"?: [ids], "excluding"?: [ids]}
//                   Authorization: Bearer $MESA_API_KEY (no check when the key is unset)
//                   -> 202 {"status":"accepted","recipients":[...]} once the broker has taken the
//                      message (published, or stored for offline ids), so sequential dispatches
//                      keep their order; 503 (Retry-After) when it could not: nothing was stored
//                   Idempotency-Key: <1-255 bytes of visible ASCII but " and \, or that in double quotes> (optional)
//                   -> at most one send per key in the cluster while its answer is remembered
//                      (MESA_IDEMPOTENCY_TTL): a repeat gets 200, the first 202's body and
//                      Idempotent-Replayed: true; a repeat while the first is under way gets 409
//                      (Retry-After); a 503 is not remembered (but "taken, unconfirmed" is); a bad key 400
//   GET /presence?id=a&id=b   (same key)
//                   -> 200 {"presence": {"a": {"online": true, "sockets": 2}, "b": {"online": false, "sockets": 0}}}
//                      sockets in the whole cluster; "sockets": null for an id online only on a Node
//                      server (its count is unknown); 503 when the broker cannot answer
//   POST /disconnect {"ids": [ids], "code"?: 1000 | 4006-4999, "reason"?: "<= 123 bytes"}   (same key)
//                   -> 202 {"status":"accepted","ids":[...]} once the broker took the DISCONNECT_CLIENT
//                      event; every gateway closes those ids' sockets (Node servers with 1000)
//   bounds          -> 413 for a body over max_body_bytes or more than max_ids ids,
//                      414 for a query over max_target_bytes or more than max_ids ids
//   GET /health     -> 200 (liveness: the process answers)
//                      {"status":"ok"|"degraded","connections":n,"authenticated":n,"broker":"memory"|"redis"[,"redis":bool]}
//   GET /ready      -> 200 {"status":"ready"} or 503 {"status":"not ready","reason":"..."}
//                      (shutting down; broker unreachable for longer than MESA_READY_GRACE)
//   GET /metrics    -> 200 Prometheus text
//   errors          -> 400 / 401 / 404 / 405 / 413 / 414 {"error": "..."}
//   HEAD            -> what GET answers, without the body (RFC 9110 §9.3.2)
//
// check_header() answers 401 (missing or wrong key) and 413 (Content-Length
// over max_body_bytes) from the header section alone, so the transport
// refuses such requests before it reads their body (server.on_http_header).
//
// With an admin listener (MESA_ADMIN_PORT) the public port answers /health,
// /ready and /metrics with 404, and the admin listener answers them through
// operations().
//
// Pure request -> response; what it does to the server goes through `hooks`,
// so tests drive it without sockets.
#include <openssl/crypto.h>

#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <mesa/broker/completion.hpp>
#include <mesa/close_code.hpp>
#include <mesa/envelope.hpp>
#include <mesa/http.hpp>
#include <mesa/idempotency.hpp>
#include <mesa/message.hpp>
#include <mesa/opcode.hpp>
#include <mesa/parse.hpp>

#include "metrics.hpp"

namespace gateway {

class http_api {
public:
    struct hooks {
        /// Sends a validated envelope (recipients {"*"}: everyone); `done`
        /// learns when the broker took it, or why it did not.
        std::function<void(mesa::envelope const&, mesa::broker::completion done)> dispatch;
        /// The current numbers; http_dispatches is filled in by the API.
        std::function<metrics()> snapshot;
        /// Why the gateway is not ready for traffic, or nullopt when it is.
        std::function<std::optional<std::string>()> not_ready;
        /// How long the broker took to take (or refuse) a dispatched message.
        std::function<void(std::chrono::steady_clock::duration)> dispatch_latency;
        /// The cluster's presence of ids (server::presence).
        std::function<void(std::vector<std::string> const&, mesa::broker::counts_handler)> presence;
        /// Closes ids' sockets in the cluster (server::disconnect).
        std::function<void(std::vector<std::string>, std::uint16_t, std::string, mesa::broker::completion)> disconnect;
    };
    /// Sends a validated envelope at most once per idempotency key (the
    /// caller's key, checked), recording `result` for repeats (server::send
    /// with a mesa::idempotency).
    using dispatch_once_hook =
        std::function<void(mesa::envelope const&, std::string key, std::string result, mesa::send_handler)>;

    /// Bounds of a request: a longer body gets 413, a longer target 414.
    static constexpr std::size_t max_body_bytes = 1 << 20;
    static constexpr std::size_t max_target_bytes = 8192;
    /// Ids one /presence or /disconnect may name.
    static constexpr std::size_t max_ids = 1000;

    using counter = std::atomic<std::uint64_t>;

    /// `broker_name`: "memory" or "redis" (the latter adds "redis" to /health).
    /// `dispatches` counts accepted dispatches; the APIs of a gateway's server
    /// instances share one, so each reports the whole gateway's.
    /// `operations_here`: false when an admin listener serves /health, /ready
    /// and /metrics instead (they are 404 here then).
    http_api(hooks h, std::optional<std::string> api_key, std::string broker_name,
             std::shared_ptr<counter> dispatches = std::make_shared<counter>(0), bool operations_here = true)
        : hooks_(std::move(h)),
          api_key_(std::move(api_key)),
          broker_name_(std::move(broker_name)),
          dispatches_(std::move(dispatches)),
          operations_here_(operations_here) {}

    /// Serves POST /dispatch's Idempotency-Key through `hook` (without one,
    /// a dispatch with the header gets 404).
    void on_dispatch_once(dispatch_once_hook hook) { dispatch_once_ = std::move(hook); }

    /// Tells `hook` of each request check_header() refuses for its size
    /// (413), so it is counted as the transport's refusals are
    /// (mesa_refused_http_requests_total).
    void on_refused_header(std::function<void(int status)> hook) { refused_header_ = std::move(hook); }

    std::uint64_t dispatches() const noexcept { return dispatches_->load(std::memory_order_relaxed); }

    /// The answer to a request from its header section alone (its body not
    /// read yet), or nullopt to read it and handle() it: 401 for a missing
    /// or wrong key on /dispatch, /presence and /disconnect, 413 for a
    /// Content-Length over max_body_bytes on the POSTs.
    std::optional<mesa::http_response> check_header(mesa::http_request const& header) const {
        auto const path = header.target.substr(0, header.target.find('?'));
        bool const post = header.method == "POST";
        if (!(post && (path == "/dispatch" || path == "/disconnect")) &&
            !(path == "/presence" && is_get(header.method)))
            return std::nullopt;
        if (auto r = unauthorized(header)) return r;
        if (auto const length = header.header("Content-Length"); post && length) {
            std::uint64_t n = 0;
            auto const [end, ec] = std::from_chars(length->data(), length->data() + length->size(), n);
            if (ec == std::errc::result_out_of_range || (ec == std::errc() && n > max_body_bytes)) {
                if (refused_header_) refused_header_(413);
                return error(413, "body over " + std::to_string(max_body_bytes) + " bytes");
            }
        }
        return std::nullopt;
    }

    /// Answers `req` through `respond`: at once, or for POST /dispatch once
    /// the broker took the message.
    void handle(mesa::http_request const& req, mesa::http_responder respond) {
        auto path = req.target.substr(0, req.target.find('?'));
        if (path == "/dispatch" && req.method == "POST") return dispatch(req, std::move(respond));
        if (path == "/presence" && is_get(req.method)) return presence(req, std::move(respond));
        if (path == "/disconnect" && req.method == "POST") return disconnect(req, std::move(respond));
        respond(answer(req));
    }

    /// The admin listener's answer: /health, /ready, /metrics, else 404.
    mesa::http_response operations(mesa::http_request const& req) const {
        auto path = req.target.substr(0, req.target.find('?'));
        if (path == "/health" || path == "/ready" || path == "/metrics") return operation(req, path);
        return error(404, "not found: " + path + " (the admin port has GET /health, GET /ready, GET /metrics)");
    }

private:
    /// GET, or HEAD: the same answer, whose body the transport drops.
    static bool is_get(std::string const& method) { return method == "GET" || method == "HEAD"; }

    mesa::http_response answer(mesa::http_request const& req) const {
        auto path = req.target.substr(0, req.target.find('?'));
        if (path == "/dispatch" || path == "/disconnect") return method_not_allowed("POST");
        if (path == "/presence") return method_not_allowed("GET, HEAD");
        if (operations_here_ && (path == "/health" || path == "/ready" || path == "/metrics"))
            return operation(req, path);
        return error(404, "not found: " + path + " (the API has POST /dispatch, GET /presence, POST /disconnect" +
                              (operations_here_ ? ", GET /health, GET /ready, GET /metrics)" : ")"));
    }

    mesa::http_response operation(mesa::http_request const& req, std::string const& path) const {
        if (path == "/ready") {
            if (!is_get(req.method)) return method_not_allowed("GET, HEAD");
            return ready();
        }
        if (path == "/health") {
            if (!is_get(req.method)) return method_not_allowed("GET, HEAD");
            return health();
        }
        if (path == "/metrics") {
            if (!is_get(req.method)) return method_not_allowed("GET, HEAD");
            return {200, {{"Content-Type", prometheus_content_type}}, render_prometheus(snapshot())};
        }
        return error(404, "not found: " + path);
    }

    mesa::http_response ready() const {
        auto why = hooks_.not_ready ? hooks_.not_ready() : std::nullopt;
        if (!why) return json_response(200, {{"status", "ready"}});
        return json_response(503, {{"status", "not ready"}, {"reason", *why}});
    }

public:
    static mesa::http_response json_response(int status, boost::json::object const& body) {
        return {status, {{"Content-Type", "application/json"}}, boost::json::serialize(body) + "\n"};
    }
    static mesa::http_response error(int status, std::string what) {
        return json_response(status, {{"error", std::move(what)}});
    }

private:
    metrics snapshot() const {
        metrics m = hooks_.snapshot ? hooks_.snapshot() : metrics{};
        m.http_dispatches = dispatches();
        return m;
    }

    static mesa::http_response method_not_allowed(char const* allowed) {
        auto r = error(405, std::string("method not allowed; use ") + allowed);
        r.headers.emplace_back("Allow", allowed);
        return r;
    }

    bool authorized(mesa::http_request const& req) const {
        if (!api_key_) return true;
        auto header = req.header("Authorization");
        if (!header) return false;
        // RFC 9110 §11.4: the scheme, case-insensitive, then one or more spaces.
        static constexpr std::string_view scheme = "bearer";
        std::string_view given(*header);
        if (given.size() <= scheme.size() || given[scheme.size()] != ' ' ||
            !std::equal(scheme.begin(), scheme.end(), given.begin(),
                        [](char a, char b) { return a == (b >= 'A' && b <= 'Z' ? char(b - 'A' + 'a') : b); }))
            return false;
        given.remove_prefix(scheme.size());
        while (!given.empty() && given.front() == ' ') given.remove_prefix(1);
        return given.size() == api_key_->size() && CRYPTO_memcmp(given.data(), api_key_->data(), given.size()) == 0;
    }

    static bool string_list(boost::json::object const& o, char const* name, std::vector<std::string>& out,
                            std::string& why) {
        auto const* v = o.if_contains(name);
        if (!v) return true;
        if (!v->is_array()) {
            why = std::string("\"") + name + "\" must be an array of strings";
            return false;
        }
        for (auto const& item : v->get_array()) {
            if (!item.is_string() || item.get_string().empty()) {
                why = std::string("\"") + name + "\" must be an array of non-empty strings";
                return false;
            }
            out.emplace_back(item.get_string());
        }
        return true;
    }

    void dispatch(mesa::http_request const& req, mesa::http_responder respond) {
        mesa::envelope e;
        auto refused = validated(req, e);
        if (refused) return respond(std::move(*refused));
        std::optional<std::string> key;
        if (auto bad = idempotency_key(req, key)) return respond(std::move(*bad));
        if (key && !dispatch_once_) return respond(error(404, "Idempotency-Key is not served here"));
        boost::json::array recipients;
        for (auto const& r : e.recipients) recipients.emplace_back(r);
        auto body = json_response(202, {{"status", "accepted"}, {"recipients", std::move(recipients)}}).body;
        auto answer = [respond = std::move(respond), dispatches = dispatches_, latency = hooks_.dispatch_latency,
                       start = std::chrono::steady_clock::now(),
                       keyed = key.has_value()](std::error_code ec, mesa::send_result r) {
            if (latency) latency(std::chrono::steady_clock::now() - start);
            if (ec) return respond(not_taken(ec, keyed));
            if (r.outcome == mesa::send_outcome::in_flight) {
                auto res = error(409, "a dispatch with this Idempotency-Key is under way; retry to get its answer");
                res.headers.emplace_back("Retry-After", "1");
                return respond(std::move(res));
            }
            if (r.outcome == mesa::send_outcome::replayed)
                return respond({200,
                                {{"Content-Type", "application/json"}, {"Idempotent-Replayed", "true"}},
                                std::move(r.result)});
            dispatches->fetch_add(1, std::memory_order_relaxed);
            respond({202, {{"Content-Type", "application/json"}}, std::move(r.result)});
        };
        if (key) return dispatch_once_(e, std::move(*key), std::move(body), std::move(answer));
        auto sent = [answer = std::move(answer), body = std::move(body)](std::error_code ec) {
            answer(ec, {mesa::send_outcome::sent, body});
        };
        if (hooks_.dispatch)
            hooks_.dispatch(e, std::move(sent));
        else
            sent({});
    }

    /// The 503 of a dispatch the broker did not take, or took unconfirmed.
    static mesa::http_response not_taken(std::error_code ec, bool keyed) {
        auto r = error(
            503, ec == mesa::broker::condition::taken_unconfirmed
                     ? "the broker took the message but could not confirm it (" + ec.message() +
                           "): a failover may lose it; a retry " +
                           (keyed ? "with the same Idempotency-Key is answered with its 202" : "may deliver it twice")
                     : "the broker did not take the message (" + ec.message() +
                           "); it was neither stored nor sent to other gateways" +
                           (keyed ? "" : " (this gateway's own clients may have it)") + ", retry");
        r.headers.emplace_back("Retry-After", "1");
        return r;
    }

    /// The Idempotency-Key of a POST /dispatch into `key` (unset when none),
    /// or the 400 for a bad one: one header, a key mesa::is_idempotency_key accepts;
    /// the structured-field string form of draft-ietf-httpapi-idempotency-key-header
    /// (the key in double quotes) is accepted too.
    static std::optional<mesa::http_response> idempotency_key(mesa::http_request const& req,
                                                              std::optional<std::string>& key) {
        std::size_t count = 0;
        for (auto const& [name, value] : req.headers) {
            static constexpr std::string_view wanted = "idempotency-key";
            if (name.size() != wanted.size() ||
                !std::equal(name.begin(), name.end(), wanted.begin(),
                            [](char a, char b) { return (a >= 'A' && a <= 'Z' ? char(a - 'A' + 'a') : a) == b; }))
                continue;
            ++count;
            std::string_view v = value;
            if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
            key = std::string(v);
        }
        if (count > 1) return error(400, "more than one Idempotency-Key header");
        if (key && !mesa::is_idempotency_key(*key))
            return error(400, "Idempotency-Key must be 1 to " + std::to_string(mesa::max_idempotency_key_bytes) +
                                  " bytes of visible ASCII (0x21-0x7E) other than quotes and backslashes, optionally "
                                  "in double quotes");
        return std::nullopt;
    }

    std::optional<mesa::http_response> unauthorized(mesa::http_request const& req) const {
        if (authorized(req)) return std::nullopt;
        auto r = error(401, "missing or wrong API key (send Authorization: Bearer <MESA_API_KEY>)");
        r.headers.emplace_back("WWW-Authenticate", "Bearer");
        return r;
    }

    static mesa::http_response broker_unavailable(std::error_code ec) {
        auto r = error(503, "the broker did not answer (" + ec.message() + "), retry");
        r.headers.emplace_back("Retry-After", "1");
        return r;
    }

    /// Strict percent-decoding of one query value (RFC 3986 §2.1; '+' is a space, as forms send it).
    static std::optional<std::string> query_value(std::string_view in) {
        auto hex = [](char c) -> int {
            if (c >= '0' && c <= '9') return c - '0';
            if (c >= 'a' && c <= 'f') return c - 'a' + 10;
            if (c >= 'A' && c <= 'F') return c - 'A' + 10;
            return -1;
        };
        std::string out;
        for (std::size_t i = 0; i < in.size(); ++i) {
            if (in[i] == '+') {
                out.push_back(' ');
            } else if (in[i] != '%') {
                out.push_back(in[i]);
            } else {
                if (i + 2 >= in.size()) return std::nullopt;
                int const hi = hex(in[i + 1]), lo = hex(in[i + 2]);
                if (hi < 0 || lo < 0) return std::nullopt;
                out.push_back(static_cast<char>(hi * 16 + lo));
                i += 2;
            }
        }
        return out;
    }

    /// "*" names everyone as a recipient; here it is refused, not a user.
    static std::optional<std::string> not_everyone(std::vector<std::string> const& ids) {
        if (std::find(ids.begin(), ids.end(), "*") == ids.end()) return std::nullopt;
        return std::string("\"*\" is not a user id here (it would name everyone)");
    }

    void presence(mesa::http_request const& req, mesa::http_responder respond) {
        if (auto r = unauthorized(req)) return respond(std::move(*r));
        if (req.target.size() > max_target_bytes)
            return respond(error(414, "query over " + std::to_string(max_target_bytes) + " bytes"));
        auto const q = req.target.find('?');
        std::string_view query =
            q == std::string::npos ? std::string_view() : std::string_view(req.target).substr(q + 1);
        std::vector<std::string> ids;
        while (!query.empty()) {
            auto const amp = query.find('&');
            auto const param = query.substr(0, amp);
            query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
            if (param.empty()) continue;
            if (param.substr(0, 3) != "id=")
                return respond(error(400, "unknown query parameter \"" + std::string(param) + "\"; use id=<user id>"));
            auto id = query_value(param.substr(3));
            if (!id || id->empty()) return respond(error(400, "each id must be non-empty and percent-encoded"));
            ids.push_back(std::move(*id));
        }
        if (ids.empty()) return respond(error(400, "name at least one user: GET /presence?id=<user id>&id=..."));
        if (ids.size() > max_ids) return respond(error(414, "more than " + std::to_string(max_ids) + " ids"));
        if (auto why = not_everyone(ids)) return respond(error(400, *why));
        mesa::normalize_recipients(ids);
        if (!hooks_.presence) return respond(error(404, "presence is not served here"));
        hooks_.presence(ids, [ids, respond = std::move(respond)](std::error_code ec, std::vector<std::int64_t> counts) {
            if (ec || counts.size() != ids.size()) return respond(broker_unavailable(ec));
            boost::json::object out;
            for (std::size_t i = 0; i < ids.size(); ++i) {
                boost::json::object entry;
                entry["online"] = counts[i] != 0;
                if (counts[i] < 0)
                    entry["sockets"] = nullptr;  // online on a Node server: its count is unknown
                else
                    entry["sockets"] = counts[i];
                out[ids[i]] = std::move(entry);
            }
            respond(json_response(200, {{"presence", std::move(out)}}));
        });
    }

    void disconnect(mesa::http_request const& req, mesa::http_responder respond) {
        if (auto r = unauthorized(req)) return respond(std::move(*r));
        if (req.body.size() > max_body_bytes)
            return respond(error(413, "body over " + std::to_string(max_body_bytes) + " bytes"));
        boost::json::parse_options options;
        options.max_depth = mesa::max_json_depth;
        boost::system::error_code ec;
        auto body = boost::json::parse(req.body, ec, boost::json::storage_ptr(), options);
        if (ec) return respond(error(400, "body is not valid JSON: " + ec.message()));
        if (!body.is_object()) return respond(error(400, "body must be a JSON object {ids, code?, reason?}"));
        auto const& o = body.get_object();
        std::vector<std::string> ids;
        std::string why;
        if (!o.contains("ids") || !string_list(o, "ids", ids, why))
            return respond(error(400, why.empty() ? "\"ids\" must be an array of user ids" : why));
        if (ids.empty()) return respond(error(400, "\"ids\" is empty"));
        if (ids.size() > max_ids) return respond(error(413, "more than " + std::to_string(max_ids) + " ids"));
        std::uint16_t code = mesa::close_code::normal;
        if (auto const* c = o.if_contains("code")) {
            if (!c->is_int64() || c->get_int64() < 0 || c->get_int64() > 0xFFFF ||
                !mesa::close_code::may_disconnect_with(static_cast<std::uint16_t>(c->get_int64())))
                return respond(error(400, "\"code\" must be 1000 or 4006-4999 (4000-4005 are the server's own)"));
            code = static_cast<std::uint16_t>(c->get_int64());
        }
        std::string reason;
        if (auto const* r = o.if_contains("reason")) {
            if (!r->is_string() || r->get_string().size() > mesa::close_code::max_reason_bytes)
                return respond(error(400, "\"reason\" must be a string of at most 123 bytes"));
            reason = std::string(r->get_string());
        }
        for (auto const& key : o) {
            if (key.key() != "ids" && key.key() != "code" && key.key() != "reason")
                return respond(error(400, "unknown field \"" + std::string(key.key()) + "\""));
        }
        if (auto why = not_everyone(ids)) return respond(error(400, *why));
        mesa::normalize_recipients(ids);
        if (!hooks_.disconnect) return respond(error(404, "disconnect is not served here"));
        boost::json::array named(ids.begin(), ids.end());
        hooks_.disconnect(std::move(ids), code, std::move(reason),
                          [named = std::move(named), respond = std::move(respond)](std::error_code ec) {
                              if (ec) return respond(broker_unavailable(ec));
                              respond(json_response(202, {{"status", "accepted"}, {"ids", named}}));
                          });
    }

    /// Checks a POST /dispatch and fills `e`; the refusal when it is not acceptable.
    std::optional<mesa::http_response> validated(mesa::http_request const& req, mesa::envelope& e) const {
        if (!authorized(req)) {
            auto r = error(401, "missing or wrong API key (send Authorization: Bearer <MESA_API_KEY>)");
            r.headers.emplace_back("WWW-Authenticate", "Bearer");
            return r;
        }
        boost::json::parse_options options;
        options.max_depth = mesa::max_json_depth;
        boost::system::error_code ec;
        auto body = boost::json::parse(req.body, ec, boost::json::storage_ptr(), options);
        if (ec) return error(400, "body is not valid JSON: " + ec.message());
        if (!body.is_object()) return error(400, "body must be a JSON object {message, recipients?, excluding?}");
        auto& o = body.get_object();
        auto* m = o.if_contains("message");
        if (!m || !m->is_object()) return error(400, "\"message\" must be an object {op?, d, t?}");
        auto& mo = m->get_object();
        if (!mo.contains("op")) mo["op"] = mesa::opcode::dispatch;
        auto parsed = mesa::to_message(std::move(*m));
        if (!parsed) return error(400, "\"message\": " + parsed.error().reason);
        e.msg = std::move(parsed.value());
        if (e.msg.op != mesa::opcode::dispatch && e.msg.op != mesa::opcode::internal_event)
            return error(400, "\"message.op\" must be 0 (dispatch) or 5 (internal event)");
        if (e.msg.s) return error(400, "\"message.s\" is set by the server on redelivery, not by senders");
        std::string why;
        if (!string_list(o, "recipients", e.recipients, why) || !string_list(o, "excluding", e.excluding, why))
            return error(400, why);
        if (o.contains("recipients") && e.recipients.empty())
            return error(400, "\"recipients\" is empty; omit it (or use [\"*\"]) to send to everyone");
        if (e.recipients.empty()) e.recipients = {"*"};
        mesa::normalize_recipients(e.recipients);
        for (auto const& key : o) {
            if (key.key() != "message" && key.key() != "recipients" && key.key() != "excluding")
                return error(400, "unknown field \"" + std::string(key.key()) + "\"");
        }
        return std::nullopt;
    }

    mesa::http_response health() const {
        auto m = snapshot();
        boost::json::object o;
        o["status"] = m.broker_connected ? "ok" : "degraded";
        o["connections"] = m.connections_open;
        o["authenticated"] = m.authenticated_clients;
        o["broker"] = broker_name_;
        if (broker_name_ == "redis") o["redis"] = m.broker_connected;
        return json_response(200, o);
    }

    hooks hooks_;
    dispatch_once_hook dispatch_once_;
    std::function<void(int status)> refused_header_;
    std::optional<std::string> api_key_;
    std::string broker_name_;
    std::shared_ptr<counter> dispatches_;
    bool operations_here_;
};

}  // namespace gateway
