#pragma once
// mesa::server: a Mesa WebSocket server assembled from policies.
//
//   using server = mesa::server<mesa::transport::websocketpp_plain, mesa::broker::memory,
//                               mesa::heartbeat, mesa::authentication>;
//   asio::io_context ioc;
//   server::options opts;
//   opts.port = 4000;
//   server s{ioc, opts};
//   s.on_message([&](auto const& client, mesa::message const& m) { client->send(m); });
//   s.start();
//   ioc.run();
//
// Thread-safety: a server and its clients belong to the thread running its
// io_context. More cores: one server per thread sharing a broker.
#include <mesa/detail/config.hpp>  // first: the macros Asio and websocketpp need

#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <mesa/broker/requirements.hpp>
#include <mesa/close_code.hpp>
#include <mesa/detail/idempotent_send.hpp>
#include <mesa/detail/instance_presence.hpp>
#include <mesa/detail/uuid.hpp>
#include <mesa/disconnect.hpp>
#include <mesa/envelope.hpp>
#include <mesa/feature/hooks.hpp>
#include <mesa/http.hpp>
#include <mesa/idempotency.hpp>
#include <mesa/instance_group.hpp>
#include <mesa/keys.hpp>
#include <mesa/message.hpp>
#include <mesa/parse.hpp>
#include <mesa/server_client.hpp>
#include <mesa/transport/requirements.hpp>
#include <mesa/transport/settings.hpp>
#include <mesa/upgrade_rate_limit.hpp>

namespace mesa {

/// What went wrong, for the error event. `client` is null for server-wide errors.
template <class ClientPtr>
struct basic_error {
    std::string what;
    ClientPtr client;
};

/// Traffic counters of one server (monotonic since construction).
struct server_stats {
    std::uint64_t connections_accepted = 0;
    std::uint64_t messages_received = 0;  // frames read from clients, valid or not
    std::uint64_t bytes_received = 0;
    std::uint64_t messages_sent = 0;  // frames queued to clients (hello included)
    std::uint64_t bytes_sent = 0;
};

template <class Transport, class Broker, class... Features>
class server {
    static_assert(transport::check<Transport>());
    static_assert(broker::check<Broker>());

public:
    using transport_type = Transport;
    using broker_type = Broker;
    using client = basic_client<server>;
    using client_ptr = std::shared_ptr<client>;
    using error = basic_error<client_ptr>;
    using connection_ptr = typename Transport::connection_ptr;
    using frame = typename Transport::frame;
    /// Per-connection state of every listed feature (empty without features).
    using feature_states = std::tuple<typename Features::state...>;

    /// True when feature F is compiled in.
    template <class F>
    static constexpr bool has = (std::is_same_v<F, Features> || ...);

    struct options {
        std::string host;                        // bind address; empty: every interface
        std::uint16_t port = 4000;               // 0 picks a free port (see port())
        std::optional<std::string> path;         // unset: every path is served
        std::string namespace_name;              // isolates clusters sharing a broker
        std::size_t max_frame_bytes = 1u << 20;  // larger frames are refused with 1009
        // A client that stops reading is closed (4002) when more is to be sent
        // while this many bytes wait for it, instead of growing without bound
        // (so a queue holds at most this plus one message or burst); 1 MiB
        // holds a full sync backlog of small messages. 0: no bound.
        std::size_t max_backlog_bytes = 1u << 20;
        // Upgrades past this many open connections get HTTP 503 (0: no limit).
        std::size_t max_connections = 100000;
        // An authentication that would give one id more than this many open
        // sockets in the whole cluster closes the new socket with 4005 (0: no
        // cap). Checked and counted in one atomic step with the exact
        // presence, so it needs authentication.store_connected_users; the
        // sockets of a crashed instance count until it is reaped (presence_ttl).
        std::size_t max_connections_per_user = 0;
        // Paces upgrades: past its rate they get HTTP 503 with Retry-After.
        // Share one among the servers to pace together (a process's
        // instances). Null: no limit.
        std::shared_ptr<upgrade_rate_limit> upgrade_limit;
        // When not empty, upgrades whose Origin is not listed get HTTP 403
        // (clients that send no Origin, i.e. not browsers, are admitted).
        std::vector<std::string> allowed_origins;
        // How long an instance stays counted in the cluster's presence
        // without renewing it (every third of it): after a crash its ids and
        // connections are reaped once this has passed. Longer than the
        // broker's longest reconnection pause (redis: 5 s).
        std::chrono::milliseconds presence_ttl{15000};
        bool reuse_port = false;  // several servers on one port; the kernel spreads new connections over them
        // TCP keepalive on client sockets, so that a client whose host
        // vanished without a word is found dead though nothing is sent to it
        // (see transport::tcp_keepalive). Off by default, as Node's server;
        // the heartbeat feature is the protocol's own way.
        transport::tcp_keepalive tcp_keepalive{};
        // Sibling instances of this process that hand sends to each other
        // directly, so they reach each other while the broker is down (see
        // instance_group.hpp). Null: only through the broker.
        std::shared_ptr<instance_group> group;
        typename Transport::options transport{};
        typename Broker::options broker{};
        std::tuple<typename Features::options...> features{};

        /// The options of listed feature F.
        template <class F>
        typename F::options& feature() {
            static_assert(has<F>, "mesa: this server does not list that feature, so it has no options for it");
            return std::get<typename F::options>(features);
        }
        template <class F>
        typename F::options const& feature() const {
            static_assert(has<F>, "mesa: this server does not list that feature, so it has no options for it");
            return std::get<typename F::options>(features);
        }
    };

    /// A server on the caller's io_context; nothing happens before start().
    explicit server(asio::io_context& ioc, options opts = {})
        : ioc_(ioc),
          options_(std::move(opts)),
          keys_(options_.namespace_name),
          transport_(ioc_,
                     transport::settings{options_.host, options_.port, options_.path, options_.max_frame_bytes,
                                         options_.reuse_port, options_.tcp_keepalive},
                     options_.transport),
          broker_(ioc_.get_executor(), options_.broker),
          presence_(ioc_, broker_, keys_, instance_id_, options_.presence_ttl,
                    {[this] { return presence_snapshot(); },
                     [this] { for_each_component([](auto& c) { c.on_registered_again(); }); },
                     [this](std::string const& what) { report(what); }}),
          components_(component_init<Features>{*this, options_.template feature<Features>()}...) {}

    server(server const&) = delete;
    server& operator=(server const&) = delete;
    ~server() {
        group_membership_.reset();  // no sibling hands us anything from now on
        *alive_ = false;
    }

    // ---- events ---------------------------------------------------------
    void on_connection(std::function<void(client_ptr const&)> h) { on_connection_ = std::move(h); }
    void on_message(std::function<void(client_ptr const&, message const&)> h) { on_message_ = std::move(h); }
    void on_disconnection(std::function<void(client_ptr const&, std::uint16_t code, std::string const& reason)> h) {
        on_disconnection_ = std::move(h);
    }
    void on_error(std::function<void(error const&)> h) { on_error_ = std::move(h); }
    /// Serves plain HTTP requests on the WebSocket port.
    void on_http(http_handler h) { on_http_ = std::move(h); }
    /// Checks plain HTTP requests once their header section is whole, before
    /// their body is read where the transport allows (asio_plain): e.g. 401
    /// for missing credentials, 413 for a Content-Length over the
    /// application's limit. See mesa::http_header_handler.
    void on_http_header(http_header_handler h) { on_http_header_ = std::move(h); }
    /// Diagnostics of the transport and broker (default: none).
    void on_log(std::function<void(transport::log_level, std::string const&)> h) { on_log_ = std::move(h); }

    // ---- lifecycle ------------------------------------------------------
    /// Subscribes to the cluster and starts accepting connections. Throws
    /// std::system_error when the port cannot be bound.
    void start() {
        prepare_hello();
        if (options_.group) {
            group_membership_ =
                options_.group->join(instance_id_, [this, alive = alive_](std::shared_ptr<envelope const> const& e) {
                    asio::post(ioc_, [this, alive, e] {
                        if (*alive) deliver_local(*e, false);
                    });
                });
        }
        broker_.subscribe(keys_.ws(), [this, alive = alive_](std::string_view payload) {
            if (*alive) on_publication(payload);
        });
        broker_.on_restored([this, alive = alive_] {
            if (!*alive) return;
            presence_.restored();
            for_each_component([](auto& c) { c.on_broker_restored(); });
        });
        broker_.on_resubscribed([this, alive = alive_] {
            if (*alive) for_each_component([](auto& c) { c.on_resubscribed(); });
        });
        presence_.start();
        transport::events<connection_ptr> ev;
        ev.on_open = [this](connection_ptr const& con) { opened(con); };
        ev.on_message = [this](connection_ptr const& con, std::string_view payload, bool binary) {
            received(con, payload, binary);
        };
        ev.on_control = [this](connection_ptr const& con) { control_received(con); };
        ev.on_close = [this](connection_ptr const& con, std::uint16_t code, std::string const& reason) {
            closed(con, code, reason);
        };
        ev.on_http = [this](http_request const& req, http_responder respond) {
            if (on_http_) return on_http_(req, std::move(respond));
            respond(http_response{426, {{"Content-Type", "text/plain"}}, "WebSocket upgrade required\n"});
        };
        ev.on_http_header = [this](http_request const& header) -> std::optional<http_response> {
            if (on_http_header_) return on_http_header_(header);
            return std::nullopt;
        };
        ev.on_log = [this](transport::log_level level, std::string const& text) {
            if (on_log_) on_log_(level, text);
        };
        ev.admit = [this](std::string_view origin) { return admit(origin); };
        ev.retry_after = [this] { return static_cast<unsigned>(retry_after_.count()); };
        ev.on_refused = [this](int status, std::string_view target, std::string_view origin) {
            report(refusal(status, target, origin));
        };
        ev.on_http_refused = [this](int status, std::string_view target, std::string_view reason) {
            report("HTTP request" + (target.empty() ? std::string() : " " + std::string(target)) + " refused with " +
                   std::to_string(status) + ": " + std::string(reason));
        };
        ev.on_failed = [this](std::string const& what) { report(what); };
        transport_.start(std::move(ev));
        for_each_component([](auto& c) { c.on_start(); });
    }

    /// Stops accepting and closes every client with `code` (1001: going
    /// away). Each client is finished at once (disconnection events, ids
    /// removed from the connected set, the cluster's count decreased), so the
    /// cluster's state is clean even if the process exits before the close
    /// handshakes end.
    void stop(std::uint16_t code = close_code::going_away) {
        transport_.stop_listening();
        for_each_component([](auto& c) { c.on_stop(); });
        presence_.stop();  // withdraws every id and connection of this instance at once
        std::string const reason = "server shutting down";
        while (!clients_.empty()) {
            client_ptr c = clients_.back();
            close(*c, code, reason);
            finish(c, code, reason);
        }
    }

    /// The port in use (after start(); resolves port 0).
    std::uint16_t port() { return transport_.local_port(); }

    // ---- sending --------------------------------------------------------
    /// Sends to every client of the cluster.
    void send(message const& m) { publish(envelope{m, {"*"}, {}, {}}); }

    /// Sends to the clients authenticated as one of `ids` (`{"*"}`: everyone),
    /// minus `excluding`, wherever in the cluster they are connected. `done`,
    /// when given, learns when the broker has taken the message (published,
    /// or stored by sync), or the error that kept it from doing so (then
    /// nothing was stored, and the caller may retry); it runs on this
    /// server's thread.
    void send(message const& m, std::vector<std::string> ids, std::vector<std::string> const& excluding = {},
              broker::completion done = {}) {
        envelope e = addressed(m, std::move(ids), excluding);
        if (e.recipients.empty()) {
            if (done) asio::post(ioc_, [done = std::move(done)] { done({}); });
            return;
        }
        if (!e.to_everyone()) {
            bool taken = false;
            std::apply([&](auto&... comp) { taken = (comp.on_send(e, done) || ...); }, components_);
            if (taken) return;
        }
        publish(std::move(e), std::move(done));
    }

    /// As send(m, ids, excluding, done), at most once per `once.key` in the
    /// cluster (mesa/idempotency.hpp): the key is claimed in the same broker
    /// step as the store or publish, and `done(ec, result)` tells whether
    /// this call sent (`sent`), found an earlier send's result (`replayed`,
    /// nothing sent) or found one under way (`in_flight`, nothing sent). A
    /// send that names nobody once `excluding` is removed sends nothing,
    /// records nothing and is `sent`. Unlike a plain send, nothing reaches
    /// even this server's clients before the broker has claimed the key, nor
    /// when it could not (a repeat cannot be told from a first send without
    /// it). Throws std::invalid_argument for a key is_idempotency_key refuses.
    /// `done` (may be empty) runs on this server's thread.
    void send(message const& m, std::vector<std::string> ids, std::vector<std::string> const& excluding,
              idempotency const& once, send_handler done) {
        auto const claim = detail::idempotency_claim_for(keys_, once);
        envelope e = addressed(m, std::move(ids), excluding);
        if (e.recipients.empty()) {
            if (done)
                asio::post(ioc_, [done = std::move(done), result = once.result] {
                    done({}, {send_outcome::sent, result});
                });
            return;
        }
        auto finish = [this, claim, once, done = std::move(done)](std::error_code ec, broker::claim_result c) mutable {
            detail::finish_idempotent(broker_, claim, once, ec, std::move(c), std::move(done));
        };
        if (!e.to_everyone()) {
            bool taken = false;
            std::apply([&](auto&... comp) { taken = (comp.on_send_once(e, claim, finish) || ...); }, components_);
            if (taken) return;
        }
        e.origin = instance_id_;
        auto payload = serialize(e);
        broker_.idempotent_publish(
            claim, keys_.ws(), std::move(payload),
            [this, e = std::move(e), finish = std::move(finish)](std::error_code ec, broker::claim_result c) mutable {
                if (!ec && c.status == broker::claim_result::state::claimed) deliver_routed(std::move(e));
                finish(ec, std::move(c));
            });
    }

    /// Closes the sockets of `ids` wherever in the cluster they are
    /// connected, with `code` and `reason` (the reference's DISCONNECT_CLIENT
    /// event, carrying them in `d`; Node servers close with 1000). `code`
    /// must pass close_code::may_disconnect_with and `reason` be at most
    /// close_code::max_reason_bytes, else std::invalid_argument. `done`
    /// learns when the broker took the event.
    void disconnect(std::vector<std::string> ids, std::uint16_t code = close_code::normal, std::string reason = {},
                    broker::completion done = {}) {
        publish(envelope{disconnect_event(code, std::move(reason)), std::move(ids), {}, {}}, std::move(done));
    }

    /// Asks the cluster whether `ids` are online: `done(ec, counts)`, per id
    /// its open sockets in the cluster, -1 when a Node server holds it
    /// (online, count unknown), 0 when offline; on this server's thread.
    void presence(std::vector<std::string> const& ids, broker::counts_handler done) {
        broker_.presence_query(keys_, ids, std::move(done));
    }

    /// Sends to one client directly.
    void send_to(client& c, message const& m) {
        if (c.open_) deliver(c, m, prepare(m));
    }

    /// Closes one client's connection. A refusal (close_code::is_refusal)
    /// raises the error event, unless the caller reported why just before.
    void close(client& c, std::uint16_t code, std::string const& reason = {}) {
        if (!c.open_ || c.closing_) return;
        if (close_code::is_refusal(code) && !c.reported_)
            report("closing with " + std::to_string(code) + (reason.empty() ? "" : ": " + reason),
                   c.shared_from_this());
        flush_broadcasts();  // what was sent before the close goes out before it
        c.closing_ = true;   // nothing more is queued behind the close frame
        transport_.close(c.connection_, code, reason);
    }

    // ---- state ----------------------------------------------------------
    std::vector<client_ptr> const& clients() const noexcept { return clients_; }
    /// Open connections that have an id (authenticated).
    std::size_t identified_count() const noexcept { return by_id_.size(); }
    server_stats const& stats() const noexcept { return stats_; }
    options const& config() const noexcept { return options_; }
    mesa::keys const& keys() const noexcept { return keys_; }
    Transport& transport() noexcept { return transport_; }
    Broker& broker() noexcept { return broker_; }
    asio::io_context& context() noexcept { return ioc_; }

    /// The component of listed feature F (its run-time API).
    template <class F>
    auto& feature() {
        static_assert(has<F>, "mesa: this server does not list that feature");
        return static_cast<typename F::template component<server>&>(std::get<placed<F>>(components_));
    }

    // ---- for feature policies --------------------------------------------
    /// Reports an error through the error event.
    void report(std::string what, client_ptr c = nullptr) {
        if (c && !c->reported_) {
            // Until the current handler returns: a close that follows is not reported twice.
            c->reported_ = true;
            asio::post(ioc_, [c] { c->reported_ = false; });
        }
        try {
            for_each_component([&](auto& comp) { comp.on_error(what, c); });
            if (on_error_) on_error_(error{std::move(what), std::move(c)});
        } catch (...) {
            // An error handler that throws has nowhere left to report to.
        }
    }

    /// Makes `c` reachable by sends to `id` (empty: to no id). A client
    /// counted in the cluster's presence under another id leaves it.
    void set_id(client& c, std::string id) {
        if (c.present_ && c.id_ != id) withdraw_presence(c);
        if (!c.id_.empty()) {
            auto range = by_id_.equal_range(c.id_);
            for (auto it = range.first; it != range.second; ++it) {
                if (it->second == &c) {
                    by_id_.erase(it);
                    break;
                }
            }
        }
        c.id_ = std::move(id);
        if (!c.id_.empty()) by_id_.emplace(c.id_, &c);
    }

    /// Counts `c` (which has an id) in the cluster's presence: its id is in
    /// `connected_clients` while any socket of it is open anywhere. With
    /// max_connections_per_user, the broker first checks the id's sockets in
    /// the cluster: over the cap, `c` is closed with 4005 (and the error
    /// event) and `admitted` is not called; else `admitted()` runs once `c`
    /// is counted (at once without a cap), on this server's thread.
    void mark_present(client& c, std::function<void()> admitted = {}) {
        if (c.id_.empty() || !c.open_ || c.admission_ != 0) return;  // a pending verdict calls the first `admitted`
        if (c.present_) {
            if (admitted) admitted();
            return;
        }
        c.present_ = true;
        if (!options_.max_connections_per_user) {
            presence_.change(0, c.id_, 1);
            if (admitted) admitted();
            return;
        }
        auto const admission = ++admissions_;
        c.admission_ = admission;
        presence_.admit(c.id_, static_cast<std::int64_t>(options_.max_connections_per_user),
                        [this, alive = alive_, weak = c.weak_from_this(), id = c.id_, admission,
                         admitted = std::move(admitted)](bool ok) {
                            if (!*alive) return;
                            auto c = weak.lock();
                            bool const current = c && c->open_ && c->present_ && c->admission_ == admission;
                            if (c && c->admission_ == admission) c->admission_ = 0;
                            if (!current) {
                                // Gone or renamed meanwhile: its withdrawal waited for this verdict.
                                if (ok) presence_.change(0, id, -1);
                                return;
                            }
                            if (ok) {
                                if (admitted) admitted();
                                return;
                            }
                            c->present_ = false;
                            report("user " + id + " already holds " +
                                       std::to_string(options_.max_connections_per_user) +
                                       " connections (max_connections_per_user): closing the new one",
                                   c);
                            close(*c, close_code::too_many_connections, "too many connections for this user");
                        });
    }

    /// Number of open local connections identified as `id`.
    std::size_t local_count(std::string const& id) const { return by_id_.count(id); }

    /// The frame of `m`, to deliver to many clients at the cost of one.
    frame prepare(message const& m) { return transport_.prepare(serialize(m)); }

    /// Delivers a frame prepared from `m` to `c` (or leaves it to a feature
    /// that holds it back, see hooks::hold); false when `c` is closing.
    bool deliver(client& c, message const& m, frame const& f, std::int64_t seq = 0) {
        if (!c.open_ || c.closing_) return false;
        bool held = false;
        std::apply([&](auto&... comp) { held = (comp.hold(c, m, f, seq) || ...); }, components_);
        if (held) return c.open_ && !c.closing_;  // a feature holding too much closes the client
        flush_broadcasts();                       // keeps each client's messages in the order they were sent
        if (!within_backlog(c)) return false;
        transport_.send(c.connection_, f);
        ++stats_.messages_sent;
        stats_.bytes_sent += Transport::frame_size(f);
        for_each_component([&](auto& comp) { comp.on_sent(c, m); });
        if (seq > 0) for_each_component([&](auto& comp) { comp.on_outbox_sent(c, seq); });
        return true;
    }

    /// Delivers to this server's matching clients (at once, or with the
    /// current burst of broadcasts) and publishes on the cluster's `ws`
    /// channel for the other instances, so local clients are served even
    /// while the broker is unreachable.
    void publish(envelope e, broker::completion done = {}) {
        e.origin = instance_id_;
        broker_.publish(keys_.ws(), serialize(e), std::move(done));
        deliver_routed(std::move(e));
    }

    /// Delivers `e` to this instance's and its siblings' clients directly
    /// (sync does so when the broker could not take it).
    void deliver_routed(envelope e) {
        if (options_.group) options_.group->relay(instance_id_, std::make_shared<envelope const>(e));
        deliver_local(std::move(e), true);
    }

    /// This instance's id in the cluster.
    std::string const& instance_id() const noexcept { return instance_id_; }

    /// Tells every feature that `c` authenticated (sync redelivery, ...).
    void authenticated(client& c) {
        for_each_component([&](auto& comp) { comp.on_authenticated(c); });
    }

    /// Runs `f`, turning an exception from user code into an error event.
    template <class F>
    void guarded(client_ptr const& c, char const* where, F&& f) {
        try {
            f();
        } catch (std::exception const& e) {
            report(std::string(where) + " threw: " + e.what(), c);
        } catch (...) {
            report(std::string(where) + " threw a non-standard exception", c);
        }
    }

private:
    template <class F>
    void for_each_component(F&& f) {
        std::apply([&](auto&... c) { (f(c), ...); }, components_);
    }

    static client* client_of(connection_ptr const& con) { return static_cast<client*>(con->context); }

    int admit(std::string_view origin) {
        retry_after_ = std::chrono::seconds(0);
        // Origin first: a foreign page learns nothing of the server's load.
        auto const& allowed = options_.allowed_origins;
        if (!origin.empty() && !allowed.empty() && std::find(allowed.begin(), allowed.end(), origin) == allowed.end())
            return 403;
        if (options_.max_connections && clients_.size() >= options_.max_connections) return 503;
        // Last: only an upgrade admitted otherwise takes a token.
        if (options_.upgrade_limit && (retry_after_ = options_.upgrade_limit->take()).count() > 0) {
            // The transport reports the refusal later, maybe after other upgrades.
            if (rate_refusals_.size() == max_pending_refusals) rate_refusals_.pop_front();
            rate_refusals_.push_back(retry_after_);
            return 503;
        }
        return 0;
    }

    void prepare_hello() {
        json::object d;
        json::array rules;
        for_each_component([&](auto& c) { c.on_hello(d, rules); });
        d.emplace("rules", std::move(rules));  // always present: reference clients crash without it
        hello_ = transport_.prepare(serialize(message(opcode::hello, std::move(d))));
    }

    void opened(connection_ptr const& con) {
        flush_broadcasts();  // broadcasts sent before this client came are not for it
        auto c = std::make_shared<client>(*this, con);
        con->context = c.get();
        c->index_ = clients_.size();
        clients_.push_back(c);
        transport_.send(con, *hello_);
        ++stats_.connections_accepted;
        ++stats_.messages_sent;
        stats_.bytes_sent += Transport::frame_size(*hello_);
        presence_.change(1, {}, 0);
        for_each_component([&](auto& comp) { comp.on_open(*c); });
        if (on_connection_) guarded(c, "connection handler", [&] { on_connection_(c); });
    }

    /// A ping or pong: a frame for the features that admit frames (rate_limit).
    void control_received(connection_ptr const& con) {
        if (client* c = live_client(con)) admit_frame(*c);
    }

    /// The open, not closing, client of `con`; null otherwise.
    client* live_client(connection_ptr const& con) {
        client* c = client_of(con);
        return c && c->open_ && !c->closing_ ? c : nullptr;
    }

    /// Every frame from a client passes the features' on_frame (rate_limit);
    /// false: one of them closed the client.
    bool admit_frame(client& c) {
        bool admitted = true;
        std::apply([&](auto&... comp) { admitted = (comp.on_frame(c) && ...); }, components_);
        return admitted;
    }

    void received(connection_ptr const& con, std::string_view payload, bool binary) {
        client* raw = live_client(con);
        if (!raw) return;
        client_ptr c = raw->shared_from_this();
        ++stats_.messages_received;
        stats_.bytes_received += payload.size();
        if (!admit_frame(*c)) return;
        if (binary) {
            report("binary frame refused: Mesa frames are JSON text", c);
            close(*c, close_code::unsupported_data, "binary frames are not supported");
            return;
        }
        auto parsed = parse(payload);
        if (!parsed) {
            report("bad frame: " + parsed.error().reason, c);
            close(*c, parsed.error().close_code, parsed.error().reason);
            return;
        }
        message& m = parsed.value();
        for_each_component([&](auto& comp) { comp.on_parsed(*c, m); });
        bool consumed = false;
        std::apply([&](auto&... comp) { consumed = (comp.on_message(*c, m) || ...); }, components_);
        if (consumed || !c->open_) return;
        if (m.op == opcode::heartbeat_ack) return;  // answers an op 1, whoever sent it
        if (m.op != opcode::dispatch) {
            report("unexpected opcode " + std::to_string(m.op) + " from client", c);
            return;
        }
        for_each_component([&](auto& comp) { comp.on_received(*c, m); });
        if (c->on_message_) guarded(c, "client message handler", [&] { c->on_message_(m); });
        if (on_message_) guarded(c, "message handler", [&] { on_message_(c, m); });
    }

    void closed(connection_ptr const& con, std::uint16_t code, std::string const& reason) {
        client* raw = client_of(con);
        if (!raw || !raw->open_) return;
        client_ptr c = raw->shared_from_this();
        // Closed for a protocol error the server did not send: the transport
        // refused a frame itself (1009 too big, 1002, 1007), or the client complains.
        if (!c->closing_ && close_code::is_refusal(code))
            report("connection closed with " + std::to_string(code) + (reason.empty() ? "" : ": " + reason), c);
        finish(c, code, reason);
    }

    std::string refusal(int status, std::string_view target, std::string_view origin) {
        std::string what = "upgrade of " + std::string(target) + " refused with HTTP " + std::to_string(status);
        switch (status) {
            case 404:
                return what + ": no WebSocket is served at that path";
            case 403:
                return what + ": Origin " + std::string(origin) + " is not allowed";
            case 503: {
                if (rate_refusals_.empty()) return what + ": at the connection limit";
                auto const wait = rate_refusals_.front();
                rate_refusals_.pop_front();
                return what + ": over the upgrade rate limit (Retry-After " + std::to_string(wait.count()) + " s)";
            }
            default:
                return what;
        }
    }

    /// Everything that follows the end of a connection, exactly once.
    void finish(client_ptr const& c, std::uint16_t code, std::string const& reason) {
        if (!c->open_) return;
        c->open_ = false;
        c->connection_->context = nullptr;
        for_each_component([&](auto& comp) { comp.on_close(*c, code, reason); });
        // One change for the connection and its id; a pending admission withdraws the id itself.
        bool const counted = c->present_ && c->admission_ == 0;
        presence_.change(-1, counted ? c->id_ : std::string(), counted ? -1 : 0);
        c->present_ = false;
        c->admission_ = 0;
        // Swap-remove keeps the list dense for broadcasts.
        std::size_t i = c->index_;
        if (i + 1 != clients_.size()) {
            clients_[i] = std::move(clients_.back());
            clients_[i]->index_ = i;
        }
        clients_.pop_back();
        // The handler still sees the client's id; sends to it no longer reach it.
        if (on_disconnection_) guarded(c, "disconnection handler", [&] { on_disconnection_(c, code, reason); });
        set_id(*c, {});
    }

    /// `c` leaves its id's count in the cluster; with an admission pending,
    /// its verdict does that (see mark_present).
    void withdraw_presence(client& c) {
        if (c.admission_ == 0) presence_.change(0, c.id_, -1);
        c.admission_ = 0;
        c.present_ = false;
    }

    std::pair<std::int64_t, typename detail::instance_presence<Broker>::socket_counts> presence_snapshot() const {
        std::unordered_map<std::string, std::int64_t> counts;
        for (auto const& c : clients_)
            if (c->present_) ++counts[c->id_];
        return {static_cast<std::int64_t>(clients_.size()), {counts.begin(), counts.end()}};
    }

    void on_publication(std::string_view payload) {
        envelope e;
        std::string why;
        if (!parse_envelope(payload, e, why)) {
            report(why);
            return;
        }
        // A message routed by sync (seq) reaches every instance, its origin
        // included, only from the broker: all deliver in the broker's order,
        // so sequential sends through different instances stay in order.
        bool const here = e.origin == instance_id_;
        if (e.seq == 0) {
            if (here) return;
            if (options_.group && options_.group->contains(e.origin)) return;  // a sibling handed it over already
        }
        deliver_local(std::move(e), here);
    }

    /// False, and `c` closed with 4002, when more than max_backlog_bytes wait
    /// for it already. Asked before queueing more, so a client that reads gets
    /// any one message (up to max_frame_bytes) or burst whatever the bound, and
    /// one that does not holds at most the bound plus one message or burst.
    bool within_backlog(client& c) {
        if (!options_.max_backlog_bytes || Transport::buffered_bytes(c.connection_) <= options_.max_backlog_bytes)
            return true;
        report("client stopped reading: over " + std::to_string(options_.max_backlog_bytes) +
                   " bytes wait for it, closing it",
               c.shared_from_this());
        close(c, close_code::backlog_exceeded, "send backlog exceeded");
        return false;
    }

    void deliver_local(envelope e, bool from_here) {
        if (e.msg.op == opcode::internal_event) {
            if (e.msg.t && *e.msg.t == "DISCONNECT_CLIENT") {
                auto [code, reason] = disconnect_of(e.msg);
                for_recipients(e, [&, code = code, &reason = reason](client& c) { close(c, code, reason); });
            }
            return;
        }
        if constexpr (!tracks_deliveries) {
            if (e.to_everyone()) {
                queue_broadcast(std::move(e));
                return;
            }
        }
        flush_broadcasts();
        std::optional<frame> f;  // framed once, only when someone receives it
        delivered_.clear();
        for_recipients(e, [&](client& c) {
            if (!may_receive(c)) return;
            if (!f) f = prepare(e.msg);
            bool const written = deliver(c, e.msg, *f, e.seq);
            if constexpr (tracks_deliveries) {
                if (written) delivered_.push_back(&c);
            }
        });
        if constexpr (tracks_deliveries) {
            if (!delivered_.empty())
                for_each_component([&](auto& comp) { comp.on_delivered(e.msg, delivered_, from_here); });
        }
    }

    // ---- bursts of broadcasts ------------------------------------------------
    // Broadcasts that arrive together (a batch of publications read from the
    // broker, several sends in one handler) wait until the io_context has run
    // what is ready; then every client takes the whole burst as one frame of
    // joined bytes: one queued message and one write per client per burst
    // instead of one per message. Any other send or close flushes the burst
    // first, so each client still sees everything in the order it was sent.
    // A burst is capped so a slow client overshoots its backlog bound by at
    // most one burst, and no broadcast waits behind an endless one.
    static constexpr std::size_t max_burst_bytes = 64 * 1024;

    struct pending_broadcast {
        envelope e;
        frame f;
    };

    void queue_broadcast(envelope e) {
        frame f = prepare(e.msg);
        burst_bytes_ += Transport::frame_size(f);
        broadcasts_.push_back({std::move(e), std::move(f)});
        if (burst_bytes_ >= max_burst_bytes) {
            flush_broadcasts();
            return;
        }
        if (flush_posted_) return;
        flush_posted_ = true;
        asio::post(ioc_, [this, alive = alive_] {
            if (!*alive) return;
            flush_posted_ = false;
            flush_broadcasts();
        });
    }

    void flush_broadcasts() {
        if (broadcasts_.empty() || flushing_) return;
        flushing_ = true;
        std::vector<pending_broadcast> burst;
        burst.swap(broadcasts_);
        std::size_t const burst_bytes = std::exchange(burst_bytes_, 0);
        bool const excludes =
            std::any_of(burst.begin(), burst.end(), [](auto const& b) { return !b.e.excluding.empty(); });
        std::optional<frame> joined;  // built for the first client that takes the whole burst
        // Closing is asynchronous, so the list does not change under this loop.
        for (std::size_t i = 0; i < clients_.size(); ++i) {
            client& c = *clients_[i];
            if (!c.open_ || c.closing_ || !may_receive(c) || !within_backlog(c)) continue;
            bool const takes_all =
                !excludes || std::none_of(burst.begin(), burst.end(), [&](auto const& b) { return excluded(c, b.e); });
            if (takes_all && burst.size() > 1) {
                if (!joined) {
                    std::vector<frame> frames;
                    frames.reserve(burst.size());
                    for (auto const& b : burst) frames.push_back(b.f);
                    joined = Transport::join(frames);
                }
                transport_.send(c.connection_, *joined);
                stats_.messages_sent += burst.size();
                stats_.bytes_sent += burst_bytes;
            } else {
                for (auto const& b : burst) {
                    if (excluded(c, b.e)) continue;
                    transport_.send(c.connection_, b.f);
                    ++stats_.messages_sent;
                    stats_.bytes_sent += Transport::frame_size(b.f);
                }
            }
            for (auto const& b : burst) {
                if (!excluded(c, b.e)) for_each_component([&](auto& comp) { comp.on_sent(c, b.e.msg); });
            }
        }
        flushing_ = false;
    }

    static bool excluded(client const& c, envelope const& e) {
        return !c.id_.empty() && std::find(e.excluding.begin(), e.excluding.end(), c.id_) != e.excluding.end();
    }

    bool may_receive(client const& c) {
        bool ok = true;
        std::apply([&](auto const&... comp) { ok = (comp.may_receive(c) && ...); }, components_);
        return ok;
    }

    template <class F>
    void for_recipients(envelope const& e, F&& f) {
        if (e.to_everyone()) {
            // Closing is asynchronous, so the list does not change under this loop.
            for (std::size_t i = 0; i < clients_.size(); ++i) {
                client& c = *clients_[i];
                if (!excluded(c, e)) f(c);
            }
            return;
        }
        for (auto const& id : e.recipients) {
            auto range = by_id_.equal_range(id);
            for (auto it = range.first; it != range.second; ++it) f(*it->second);
        }
    }

    asio::io_context& ioc_;
    options options_;
    mesa::keys keys_;
    Transport transport_;
    Broker broker_;
    std::string instance_id_ = detail::uuid_v4();
    detail::instance_presence<Broker> presence_;
    // Components are built in place and never move, so they may hand out
    // `this` (timers, broker callbacks) from their constructors.
    template <class F>
    struct component_init {
        server& owner;
        typename F::options const& options;
    };
    template <class F>
    struct placed : F::template component<server> {
        explicit placed(component_init<F> init) : F::template component<server>(init.owner, init.options) {}
        placed(placed const&) = delete;
        placed& operator=(placed const&) = delete;
    };
    std::tuple<placed<Features>...> components_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);

    // Only a feature that watches deliveries (middleware) pays for the list.
    static constexpr bool tracks_deliveries = (feature::watches_deliveries<Features>::value || ...);
    struct no_list {
        void clear() {}
    };
    std::conditional_t<tracks_deliveries, std::vector<client*>, no_list> delivered_;
    std::vector<pending_broadcast> broadcasts_;  // the current burst, see queue_broadcast()
    std::size_t burst_bytes_ = 0;
    bool flush_posted_ = false;
    bool flushing_ = false;

    std::vector<client_ptr> clients_;
    server_stats stats_;
    std::unordered_multimap<std::string, client*> by_id_;
    std::uint64_t admissions_ = 0;         // numbers admissions under the per-user cap
    std::chrono::seconds retry_after_{0};  // of the last upgrade refused by the rate limit
    // Rate-limit refusals the transport has not reported yet (a bound: a
    // transport may not report one whose peer left).
    static constexpr std::size_t max_pending_refusals = 1024;
    std::deque<std::chrono::seconds> rate_refusals_;
    std::optional<frame> hello_;

    std::function<void(client_ptr const&)> on_connection_;
    std::function<void(client_ptr const&, message const&)> on_message_;
    std::function<void(client_ptr const&, std::uint16_t, std::string const&)> on_disconnection_;
    std::function<void(error const&)> on_error_;
    http_handler on_http_;
    http_header_handler on_http_header_;
    std::function<void(transport::log_level, std::string const&)> on_log_;
    std::shared_ptr<void> group_membership_;
};

}  // namespace mesa
