// libFuzzer target: a whole server with every feature on the in-memory
// transport and the memory broker, driven by the input as a sequence of
// operations: peers open, send frames (raw or shaped like the protocol's),
// close; the application authenticates (verdicts given later, in any order),
// sends to everyone / to ids / excluding ids; the cluster publishes (well or
// badly formed) on the ws and portal-pool channels and stores backlogs;
// heartbeat sweeps; the io_context drains. After each drain and at the end
// (after stop()), invariants are checked:
//
// - no client left in server.clients() whose connection the transport closed,
//   and none missing whose connection is open;
// - every frame a peer received parses, the first is the hello (op 10) and
//   there is no other hello, no `o` field ever reaches a client, op 22 comes
//   at most once per connection, redeliveries are numbered s = 1..n;
// - the server's sent-frame counter equals the frames peers received;
// - the cluster's connection counter equals the open connections, and the
//   connected-ids set equals the ids of open authenticated clients;
// - everything the server publishes (ws, portal) parses; what it stores in a
//   backlog parses;
// - identified_count() matches the clients that have an id;
// - after stop(), every peer is closed and the server has no client.
//
// Build and run: .ci/fuzz.
#include <fuzzer/FuzzedDataProvider.h>

#include <mesa/broker/memory.hpp>
#include <mesa/envelope.hpp>
#include <mesa/feature/authentication.hpp>
#include <mesa/feature/heartbeat.hpp>
#include <mesa/feature/message_store.hpp>
#include <mesa/feature/middleware.hpp>
#include <mesa/feature/portals.hpp>
#include <mesa/feature/reconnect.hpp>
#include <mesa/feature/sync.hpp>
#include <mesa/feature/version_rule.hpp>
#include <mesa/parse.hpp>
#include <mesa/portal_event.hpp>
#include <mesa/server.hpp>
#include <mesa/transport/memory.hpp>

#include <asio/io_context.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using server_type =
    mesa::server<mesa::transport::memory, mesa::broker::memory, mesa::heartbeat, mesa::reconnect, mesa::authentication,
                 mesa::sync, mesa::version_rule, mesa::message_store, mesa::portals, mesa::middleware>;
using peer_ptr = mesa::transport::memory::connection_ptr;
using mesa::json::object;

[[noreturn]] void fail(char const* what, std::string const& detail = {}) {
    std::fprintf(stderr, "fuzz_server: invariant broken: %s\n  detail: %s\n", what, detail.c_str());
    std::abort();
}

constexpr char const* ids[] = {"u0", "u1", "u2", "u3"};
constexpr char const* types[] = {"ECHO", "BROADCAST", "TO", "DISCONNECT", "THROW", "X", "CLIENT_VERSION"};
constexpr std::size_t max_peers = 12;

struct pending_auth {
    std::weak_ptr<server_type::client> who;
    mesa::authentication::done verdict;
};

/// What the checks remember of each peer between drains.
struct peer_record {
    peer_ptr peer;
    std::size_t checked = 0;  // frames already checked
    int authenticated_frames = 0;
};

class harness {
public:
    explicit harness(FuzzedDataProvider& in) : in_(in) {
        server_type::options o;
        o.max_frame_bytes = in_.ConsumeIntegralInRange<std::size_t>(16, 2048);
        o.namespace_name = in_.ConsumeBool() ? "" : "ns";
        o.broker.cluster = hub_;
        auto& hb = o.feature<mesa::heartbeat>();
        hb.max_attempts = in_.ConsumeIntegralInRange<unsigned>(0, 3);  // timer never fires: sweeps are ops
        auto& auth = o.feature<mesa::authentication>();
        auth.required = in_.ConsumeBool();
        auth.send_user_object = in_.ConsumeBool();
        auth.disconnect_on_fail = in_.ConsumeBool();
        auth.store_connected_users = in_.ConsumeBool();
        store_users_ = auth.store_connected_users;
        // Default 10 s deadline: never reached while fuzzing (deterministic).
        auto& sy = o.feature<mesa::sync>();
        sy.max_backlog = in_.ConsumeIntegralInRange<std::size_t>(0, 4);
        o.feature<mesa::version_rule>().version = "1.0.0";
        o.feature<mesa::message_store>().max_per_direction = in_.ConsumeIntegralInRange<std::size_t>(0, 3);
        o.feature<mesa::portals>().distribute_load = true;
        keys_ = mesa::keys(o.namespace_name);

        // Cluster traffic the server causes, seen from another instance.
        observer_.subscribe(keys_.ws(), [this](std::string_view payload) {
            if (injected_.count(std::string(payload))) return;
            mesa::envelope e;
            std::string why;
            if (!mesa::parse_envelope(payload, e, why)) fail("server published an unreadable ws envelope", why);
        });
        observer_.subscribe(keys_.portal(), [](std::string_view payload) {
            mesa::portal_event e;
            std::string why;
            if (!mesa::parse_portal_event(payload, e, why)) fail("server published an unreadable portal event", why);
        });
        if (in_.ConsumeBool()) observer_.set_add(keys_.available_portals_pool(), "p1");

        server_ = std::make_unique<server_type>(ioc_, o);
        wire();
        server_->start();
    }

    void run() {
        while (in_.remaining_bytes() > 0) step();
        drain();
        check();
        server_->stop();
        drain();
        check();
        if (!server_->clients().empty()) fail("clients left after stop()");
        for (auto const& r : peers_)
            if (r.peer->open()) fail("peer still open after stop()");
        // Late verdicts on clients that are gone do nothing.
        for (auto& p : pending_) {
            p.verdict.succeed("u0");
            p.verdict.fail("late");
        }
        drain();
    }

private:
    void wire() {
        auto& s = *server_;
        s.on_connection([](server_type::client_ptr const& c) { c->send(mesa::message("WELCOME", {})); });
        s.on_message([this](server_type::client_ptr const& c, mesa::message const& m) { on_message(c, m); });
        s.on_disconnection([](server_type::client_ptr const& c, std::uint16_t, std::string const&) {
            if (c->is_open()) fail("disconnection event for an open client");
        });
        s.feature<mesa::authentication>().on_authenticate(
            [this](server_type::client_ptr const& c, object const& credentials, mesa::authentication::done done) {
                // An immediate verdict when the credentials ask for one, else later.
                if (auto const* id = credentials.if_contains("id"); id && id->is_string()) {
                    std::string const text(id->get_string());
                    if (text == "throw") throw std::runtime_error("authentication handler failed");
                    if (text.empty()) return done.fail("empty id");
                    return done.succeed(text, credentials);
                }
                pending_.push_back({c, std::move(done)});
            });
        s.feature<mesa::sync>().on_backlog_overflow([](std::string const&, std::int64_t dropped) {
            if (dropped <= 0) fail("overflow of nothing reported");
        });
        s.feature<mesa::middleware>().use([](server_type& server) {
            mesa::middleware::handlers<server_type> h;
            h.on_message_sent = [&server](mesa::message const& m, std::vector<server_type::client_ptr> const& to,
                                          bool here) {
                for (auto const& c : to) {
                    if (c && c->is_open()) continue;
                    auto const& list = server.clients();
                    bool const listed = c && std::find(list.begin(), list.end(), c) != list.end();
                    fail("on_message_sent names a client that did not get the message (closing or closed)",
                         mesa::serialize(m) + (here ? " from here" : " from the cluster") + ", recipient " +
                             (c ? "id '" + c->id() + "' " + (listed ? "listed" : "not listed") : "null") + ", " +
                             std::to_string(to.size()) + " recipients");
                }
            };
            h.on_message_received = [](mesa::message const& m, server_type::client_ptr const&) {
                if (m.t && *m.t == "THROW") throw std::runtime_error("middleware failed");
            };
            h.on_redeliver_undeliverable_messages = [](std::vector<mesa::message> const& ms,
                                                       server_type::client_ptr const& c) {
                if (!c) fail("redelivery to no client");
                for (std::size_t i = 0; i < ms.size(); ++i)
                    if (ms[i].s != static_cast<std::int64_t>(i + 1)) fail("redelivery not numbered 1..n");
            };
            h.on_disconnection = [](server_type::client_ptr const& c, std::uint16_t, std::string const&) {
                if (!c) fail("disconnection of no client");
            };
            return h;
        });
    }

    // The application: what a chat server might do with each message.
    void on_message(server_type::client_ptr const& c, mesa::message const& m) {
        if (!m.t) return;
        auto const& t = *m.t;
        if (t == "ECHO") {
            c->send(m);
        } else if (t == "BROADCAST") {
            server_->send(m);
        } else if (t == "TO") {
            std::vector<std::string> to, except;
            if (auto const* list = m.d.if_contains("to"); list && list->is_array())
                for (auto const& v : list->get_array())
                    if (v.is_string()) to.emplace_back(v.get_string());
            if (auto const* list = m.d.if_contains("except"); list && list->is_array())
                for (auto const& v : list->get_array())
                    if (v.is_string()) except.emplace_back(v.get_string());
            server_->send(m, to, except);
        } else if (t == "DISCONNECT") {
            c->disconnect(4100, "asked to");
            c->send(m);  // after the close: must not reach it... or reach it before the close frame
        } else if (t == "THROW") {
            throw std::runtime_error("message handler failed");
        }
    }

    std::string pick_id() { return ids[in_.ConsumeIntegralInRange<std::size_t>(0, 3)]; }

    std::vector<std::string> pick_ids() {
        std::vector<std::string> out;
        auto const mask = in_.ConsumeIntegral<std::uint8_t>();
        for (std::size_t i = 0; i < 4; ++i)
            if (mask & (1u << i)) out.emplace_back(ids[i]);
        if (mask & 0x10) out.emplace_back("*");
        if (mask & 0x20) out.emplace_back("nobody");
        return out;
    }

    peer_ptr pick_peer() {
        if (peers_.empty()) return nullptr;
        auto const i = in_.ConsumeIntegralInRange<std::size_t>(0, peers_.size() - 1);
        if (trace_) std::fprintf(stderr, "  peer %zu (%s)\n", i, peers_[i].peer->open() ? "open" : "closed");
        return peers_[i].peer;
    }

    server_type::client_ptr pick_client() {
        auto const& list = server_->clients();
        if (list.empty()) return nullptr;
        auto const& c = list[in_.ConsumeIntegralInRange<std::size_t>(0, list.size() - 1)];
        if (trace_) std::fprintf(stderr, "  client '%s'\n", c->id().c_str());
        return c;
    }

    mesa::message pick_message() {
        mesa::message m(types[in_.ConsumeIntegralInRange<std::size_t>(0, 5)], object{{"n", ++counter_}});
        switch (in_.ConsumeIntegralInRange<int>(0, 2)) {
            case 0:
                m.sync = false;
                break;
            case 1:
                m.sync = true;
                break;
            default:
                break;
        }
        return m;
    }

    void send_frame(peer_ptr const& p, std::string text) {
        if (trace_) std::fprintf(stderr, "  frame %s\n", text.c_str());
        if (p) p->send_text(std::move(text));
    }

    void step() {
        int const op = in_.ConsumeIntegralInRange<int>(0, 20);
        if (trace_)
            std::fprintf(stderr, "op %d (%zu clients, %zu peers)\n", op, server_->clients().size(), peers_.size());
        switch (op) {
            case 0:
            case 1:
                if (peers_.size() < max_peers) peers_.push_back({server_->transport().connect("/")});
                break;
            case 2:
                if (auto p = pick_peer())
                    p->close(in_.ConsumeIntegral<std::uint16_t>(), in_.ConsumeRandomLengthString(16));
                break;
            case 3:
                send_frame(pick_peer(), in_.ConsumeRandomLengthString(256));
                break;
            case 4:
                if (auto p = pick_peer()) p->send_binary(in_.ConsumeRandomLengthString(16));
                break;
            case 5:
                server_->feature<mesa::heartbeat>().sweep();
                break;
            case 6:
                server_->send(pick_message());
                break;
            case 7: {
                auto m = pick_message();
                auto to = pick_ids();
                auto except = pick_ids();
                server_->send(m, std::move(to), except);
                break;
            }
            case 8: {  // a verdict on a pending authentication
                if (pending_.empty()) break;
                auto const i = in_.ConsumeIntegralInRange<std::size_t>(0, pending_.size() - 1);
                auto p = std::move(pending_[i]);
                pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(i));
                switch (in_.ConsumeIntegralInRange<int>(0, 4)) {
                    case 0:
                        p.verdict.fail("no");
                        break;
                    case 1:
                        p.verdict.succeed("");
                        break;
                    case 2:
                        p.verdict.succeed(pick_id(), nullptr);
                        break;
                    case 3:
                        p.verdict.succeed(pick_id(), "a string user");
                        break;
                    default:
                        p.verdict.succeed(pick_id(), object{{"name", "Ada"}});
                        break;
                }
                if (in_.ConsumeBool()) pending_.push_back(std::move(p));  // called twice
                break;
            }
            case 9:
                drain();
                check();
                break;
            case 10: {  // op 2
                object d;
                switch (in_.ConsumeIntegralInRange<int>(0, 3)) {
                    case 0:
                        d["id"] = pick_id();
                        break;
                    case 1:
                        d["id"] = "throw";
                        break;
                    case 2:
                        d["id"] = "";
                        break;
                    default:
                        d["token"] = "later";
                        break;
                }
                if (in_.ConsumeBool()) d["shouldSync"] = in_.ConsumeBool();
                send_frame(pick_peer(), mesa::serialize(mesa::message(mesa::opcode::authenticate, std::move(d))));
                break;
            }
            case 11:
                send_frame(pick_peer(), R"({"op":11})");
                break;
            case 12:
                send_frame(pick_peer(), in_.ConsumeBool() ? R"({"op":0,"t":"CLIENT_VERSION","d":{"v":"1.0.0"}})"
                                                          : R"({"op":0,"t":"CLIENT_VERSION","d":{"v":"0.9"}})");
                break;
            case 13: {  // an application message shaped by the input
                auto m = pick_message();
                m.sync.reset();
                if (*m.t == "TO") {
                    mesa::json::array to, except;
                    for (auto const& id : pick_ids()) to.emplace_back(id);
                    for (auto const& id : pick_ids()) except.emplace_back(id);
                    m.d["to"] = std::move(to);
                    m.d["except"] = std::move(except);
                }
                if (in_.ConsumeBool()) m.t = types[in_.ConsumeIntegralInRange<std::size_t>(0, 6)];
                send_frame(pick_peer(), mesa::serialize(m));
                break;
            }
            case 14: {  // another instance (or a Node dispatcher) publishes on ws
                std::string text;
                if (in_.ConsumeBool()) {
                    mesa::envelope e{pick_message(), pick_ids(), pick_ids(), in_.ConsumeBool() ? "other" : ""};
                    if (in_.ConsumeBool()) e.msg = mesa::message(mesa::opcode::internal_event, {});
                    if (in_.ConsumeBool()) e.msg.t = "DISCONNECT_CLIENT";
                    text = mesa::serialize(e);
                } else {
                    text = in_.ConsumeRandomLengthString(256);
                    injected_raw_ = true;  // may carry any op (10, 22...) to clients: legal for a dispatcher
                }
                injected_.insert(text);
                observer_.publish(keys_.ws(), text);
                break;
            }
            case 15: {  // a portal joins or leaves, or garbage on the pool channel
                std::string text = in_.ConsumeBool() ? mesa::serialize_portal_presence(in_.ConsumeBool() ? "p1" : "p2",
                                                                                       in_.ConsumeBool())
                                                     : in_.ConsumeRandomLengthString(64);
                observer_.publish(keys_.available_portals_pool(), text);
                break;
            }
            case 16:  // the server closes a client
                if (auto c = pick_client()) server_->close(*c, in_.ConsumeIntegral<std::uint16_t>(), "server side");
                break;
            case 17:  // a send straight to one client
                if (auto c = pick_client()) server_->send_to(*c, pick_message());
                break;
            case 18:
                if (auto c = pick_client())
                    server_->feature<mesa::authentication>().update_user(*c, object{{"name", "Grace"}});
                break;
            case 19: {  // a dispatcher (maybe a buggy one) stored a message for an offline id
                std::string text = in_.ConsumeBool() ? mesa::serialize(pick_message(), mesa::audience::service)
                                                     : in_.ConsumeRandomLengthString(64);
                injected_backlog_.insert(text);
                observer_.backlog_append(keys_.undelivered_messages(), pick_id(), text, 0);
                break;
            }
            default:  // a batch: several frames from one peer before the server runs
                if (auto p = pick_peer())
                    for (int i = in_.ConsumeIntegralInRange<int>(1, 4); i > 0; --i)
                        p->send_text(R"({"op":0,"t":"BROADCAST","d":{}})");
                break;
        }
    }

    void drain() {
        for (int i = 0; i < 10000; ++i) {
            ioc_.restart();
            if (ioc_.poll() == 0) return;
        }
        fail("io_context never drains");
    }

    template <class T, class Start>
    T ask(Start start) {
        T out{};
        bool done = false;
        start([&](std::error_code ec, T value) {
            if (ec) fail("memory broker failed", ec.message());
            out = std::move(value);
            done = true;
        });
        drain();
        if (!done) fail("memory broker never answered");
        return out;
    }

    void check() {
        auto const& clients = server_->clients();
        std::set<peer_ptr> serving;
        std::size_t with_id = 0;
        std::set<std::string> online_ids;
        for (auto const& c : clients) {
            // Listed while closing (is_open() false, close frame queued) is fine.
            if (!c->connection()->open()) fail("client listed whose connection the transport closed");
            serving.insert(c->connection());
            if (!c->id().empty()) {
                ++with_id;
                online_ids.insert(c->id());
            }
            auto const& st = c->state<mesa::authentication>();
            if (!c->id().empty() && !st.authenticated) fail("id without authentication");
        }
        if (serving.size() != clients.size()) fail("a connection is listed twice");
        if (with_id != server_->identified_count()) fail("identified_count() is wrong");

        std::uint64_t frames = 0, bytes = 0;
        for (auto& r : peers_) {
            auto const& p = *r.peer;
            if (p.open() && !serving.count(r.peer)) fail("open connection not listed by the server");
            auto const& got = p.received();
            frames += got.size();
            for (std::size_t i = r.checked; i < got.size(); ++i) {
                boost::system::error_code ec;
                auto v = mesa::json::parse(got[i], ec);
                if (ec || !v.is_object()) fail("peer received a frame that is not a JSON object", got[i]);
                if (v.get_object().contains("o")) fail("a client received `o`", got[i]);
                auto parsed = mesa::parse(got[i]);
                if (!parsed) fail("peer received an unparsable frame", got[i] + " : " + parsed.error().reason);
                auto const& m = parsed.value();
                if (i == 0 && m.op != mesa::opcode::hello) fail("the first frame is not the hello", got[i]);
                if (injected_raw_) continue;
                if (i > 0 && m.op == mesa::opcode::hello) fail("a second hello", got[i]);
                if (m.op == mesa::opcode::authenticated && ++r.authenticated_frames > 1) fail("op 22 twice", got[i]);
            }
            r.checked = got.size();
            for (auto const& f : got) bytes += f.size();
        }
        if (frames != server_->stats().messages_sent) fail("sent-frame counter differs from frames received");
        if (bytes != server_->stats().bytes_sent) fail("sent-byte counter differs from bytes received");

        auto const count =
            ask<std::int64_t>([&](auto h) { observer_.counter_get(keys_.connected_clients_count(), std::move(h)); });
        if (count != static_cast<std::int64_t>(server_->clients().size()))
            fail("connected_clients_count differs from the open connections",
                 std::to_string(count) + " vs " + std::to_string(server_->clients().size()));
        if (store_users_) {
            auto const members = ask<std::vector<std::string>>(
                [&](auto h) { observer_.set_members(keys_.connected_clients(), std::move(h)); });
            std::set<std::string> const stored(members.begin(), members.end());
            if (stored != online_ids) {
                std::string d = "stored:";
                for (auto const& id : stored) d += " " + id;
                d += " online:";
                for (auto const& id : online_ids) d += " " + id;
                fail("connected_clients set differs from the ids online", d);
            }
        }
        // Whatever the server stored for offline ids parses.
        for (auto const* id : ids) {
            auto texts = ask<std::vector<std::string>>(
                [&](auto h) { observer_.backlog_take(keys_.undelivered_messages(), id, std::move(h)); });
            for (auto const& t : texts)
                if (!injected_backlog_.count(t) && !mesa::parse(t)) fail("stored an unreadable message", t);
            for (auto& t : texts) observer_.backlog_append(keys_.undelivered_messages(), id, std::move(t), 0);
        }
        drain();
    }

    FuzzedDataProvider& in_;
    asio::io_context ioc_;  // first: outlives everything that posts to it
    std::shared_ptr<mesa::broker::memory::hub> hub_ = std::make_shared<mesa::broker::memory::hub>();
    mesa::broker::memory observer_{ioc_.get_executor(), {hub_}};
    mesa::keys keys_;
    std::multiset<std::string> injected_;
    std::set<std::string> injected_backlog_;
    bool injected_raw_ = false;
    // MESA_FUZZ_TRACE=1 ./fuzz_server crash-...: the operations, to turn a crash into a test.
    bool const trace_ = std::getenv("MESA_FUZZ_TRACE") != nullptr;
    std::unique_ptr<server_type> server_;
    std::vector<peer_record> peers_;
    std::vector<pending_auth> pending_;
    bool store_users_ = true;
    std::int64_t counter_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    FuzzedDataProvider in(data, size);
    harness h(in);
    h.run();
    return 0;
}
