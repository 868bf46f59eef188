#pragma once
// mesa::client: a C++ client that connects to any Mesa server (ours or the
// Node reference), on the caller's asio::io_context (websocketpp client over
// standalone Asio). ws:// only: wss:// is mesa::tls_client, the same client
// on TLS, in <mesa/client_tls.hpp>, so that plain clients need no OpenSSL.
//
//   asio::io_context ioc;
//   mesa::client c{ioc, "ws://127.0.0.1:4000"};
//   c.on_message([](mesa::message const& m) { std::cout << mesa::serialize(m) << '\n'; });
//   c.send(mesa::message("PING", {}));  // queued until the connection is open
//   ioc.run();
//
// What it does, compared with the reference Client (@cryb/mesa 1.5.8):
// - answers every op 1 with op 11; reads the hello (op 10): intervals, rules;
//   sends CLIENT_VERSION under `enforce_equal_versions`; keeps bounded
//   sent/received lists under `store_messages`;
// - send() queues while disconnected (at most options::max_queued messages;
//   past it the message is dropped, send() returns send_status::dropped and
//   an error event says so) and flushes the queue in order on every open,
//   right after the op 2 of the credentials;
// - authenticate() completes with the user object of op 22, or with an error
//   on a 1008 close, on any close of the connection that carried the op 2, on
//   disconnect(), or when no op 22 arrived within authentication_timeout (the
//   reference never rejects). With options::reauthenticate the credentials are
//   sent again after every reconnection (dropped after a 1008);
// - reconnects when the hello advertised c_reconnect_interval (or
//   options::fallback_reconnect_interval is set), with exponential backoff,
//   a cap and jitter (client/reconnect_schedule.hpp), and never after an
//   explicit disconnect() until the next connect() (the reference does);
// - credentials end: when the server closes with 4004 (token expired) the
//   client asks on_refresh() for fresh ones and connects again with them;
//   when it knows their expiry (authenticate_options::expires_at, or the
//   `exp` of a JWT `token`) it asks options::refresh_ahead before it and
//   sends op 2 on the open connection (the server extends the session, no
//   new op 22);
// - a bad frame from the server (not JSON, wrong types, binary) is reported
//   as an error event and ignored, never a crash.
//
// Thread-safety: none; use it on the thread running its io_context. Handlers
// run on that thread and may call any member, but must not destroy the client.
// Destroying the client closes nothing gracefully: call disconnect() and let
// the close finish first when the server should see a clean 1000.
#include <mesa/detail/config.hpp>  // first: the macros Asio and websocketpp need

#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mesa/client/detail/jwt_expiry.hpp>
#include <mesa/client/options.hpp>
#include <mesa/client/reconnect_schedule.hpp>
#include <mesa/close_code.hpp>
#include <mesa/message.hpp>
#include <mesa/opcode.hpp>
#include <mesa/parse.hpp>
#include <mesa/transport/detail/websocketpp_client_config.hpp>
#include <mesa/transport/settings.hpp>
#include <mesa/version.hpp>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>
#include <websocketpp/client.hpp>
#include <websocketpp/uri.hpp>

namespace mesa {

/// A Mesa client on websocketpp socket policy `Socket`; users type the
/// aliases mesa::client (ws://) and mesa::tls_client (wss://,
/// <mesa/client_tls.hpp>). Everything above applies to both.
template <class Socket>
class socket_client {
    using socket_traits = transport::detail::websocketpp_client_socket<Socket>;
    using endpoint_type = websocketpp::client<transport::detail::basic_websocketpp_client_config<Socket>>;
    using connection_ptr = typename endpoint_type::connection_ptr;
    using message_ptr = typename endpoint_type::message_ptr;
    using milliseconds = std::chrono::milliseconds;

public:
    /// client_options; for wss://, tls_client_options (client_options and `tls`).
    using options = typename socket_traits::options;

    /// The flags of the connected event, named as the reference reports them.
    struct connection_info {
        bool is_initial_connection = false;          // the first open ever
        bool is_initial_session_connection = false;  // the first open after construction or disconnect()
        bool is_automatic_reconnection = false;      // opened by the reconnect timer
    };
    struct disconnection {
        std::uint16_t code = 0;
        std::string reason;
        bool will_attempt_reconnect = false;
    };
    enum class error_kind {
        connection_failed,  // an attempt to connect failed (refused, handshake failed, timeout)
        bad_frame,          // the server sent a frame that is not a Mesa message; ignored
        queue_full,         // send() while disconnected with max_queued messages waiting; dropped
        send_failed,        // websocketpp refused a frame on an open connection
        authentication,     // the server refused the credentials (1008) or did not answer
    };
    struct error {
        error_kind kind;
        std::string what;
    };
    enum class send_status { sent, queued, dropped };

    using authenticate_options = client_authenticate_options;
    /// The outcome of authenticate(): the user object of op 22, or an error.
    struct authentication_result {
        json::value user;                  // op 22's d (`{}` when the server does not send the user)
        std::optional<std::string> error;  // set on failure
        std::uint16_t close_code = 0;      // the close code when a close caused the failure
        explicit operator bool() const noexcept { return !error; }
    };
    using authenticate_handler = std::function<void(authentication_result const&)>;

    /// Throws std::invalid_argument for a URL that is not ws://host[:port][/path]
    /// (wss:// for mesa::tls_client), naming the type that takes it. A
    /// tls_client also throws for unusable TLS options (see client_tls.hpp).
    socket_client(asio::io_context& ioc, std::string const& url, options o = {})
        : ioc_(ioc),
          options_(std::move(o)),
          url_(check_url(url)),
          security_(options_, websocketpp::uri(url_).get_host()),
          schedule_({options_.max_reconnect_delay, options_.reconnect_jitter, options_.fallback_reconnect_interval}),
          reconnect_timer_(ioc),
          auth_timer_(ioc),
          refresh_timer_(ioc),
          rng_(std::random_device{}()) {
        endpoint_.get_elog().set_sink([this](transport::log_level level, std::string const& text) {
            if (on_log_) on_log_(level, text);
        });
        endpoint_.init_asio(&ioc_);
        security_.prepare(endpoint_);
        endpoint_.set_max_message_size(options_.max_frame_bytes);
        endpoint_.set_user_agent(std::string("mesa-cpp/") + version_string);
        if (options_.auto_connect) {
            asio::post(ioc_, [this, alive = std::weak_ptr<int>(alive_)] {
                if (!alive.expired() && !auto_connect_cancelled_) connect();
            });
        }
    }
    socket_client(socket_client const&) = delete;
    socket_client& operator=(socket_client const&) = delete;

    ~socket_client() {
        alive_.reset();
        endpoint_.get_elog().set_sink(nullptr);
        reconnect_timer_.cancel();
        auth_timer_.cancel();
        refresh_timer_.cancel();
        drop_connection();
    }

    // ---- events (one handler each; setting another replaces it) ----
    void on_connected(std::function<void(connection_info const&)> h) { on_connected_ = std::move(h); }
    void on_message(std::function<void(message const&)> h) { on_message_ = std::move(h); }
    void on_disconnected(std::function<void(disconnection const&)> h) { on_disconnected_ = std::move(h); }
    void on_error(std::function<void(error const&)> h) { on_error_ = std::move(h); }
    /// Every op 22, including the ones answering automatic re-authentications.
    void on_authenticated(std::function<void(json::value const& user)> h) { on_authenticated_ = std::move(h); }
    /// websocketpp's own warnings and errors (diagnostics only).
    void on_log(std::function<void(transport::log_level, std::string const&)> h) { on_log_ = std::move(h); }
    /// Gives fresh credentials, now or later, on this client's thread.
    using credentials_callback = std::function<void(json::object credentials)>;
    /// Asked for fresh credentials after a 4004 close (token expired) and
    /// options::refresh_ahead before a known expiry; without it a 4004
    /// drops the credentials.
    void on_refresh(std::function<void(credentials_callback provide)> h) { on_refresh_ = std::move(h); }

    /// Opens a connection unless one is open or opening. Allows automatic
    /// reconnections again after a disconnect().
    void connect() {
        auto_connect_cancelled_ = true;
        if (state_ != state::idle) return;
        cancel_reconnect();
        schedule_.on_connect_requested();
        if (credentials_) expire_at(expires_at_);  // refreshes again after a disconnect()
        open_connection(false);
    }

    /// Closes the connection (with `code`, default 1000) and stops every
    /// automatic reconnection until the next connect(). A pending
    /// authenticate() fails.
    void disconnect(std::uint16_t code = close_code::normal, std::string const& reason = "") {
        auto_connect_cancelled_ = true;
        schedule_.on_disconnect_requested();
        cancel_reconnect();
        is_initial_session_connection_ = true;
        fail_authentication("disconnect() was called", 0);
        ++refresh_token_;  // no refresh until the next connect()
        refresh_timer_.cancel();
        if (state_ == state::open) {
            websocketpp::lib::error_code ec;
            con_->close(code, reason, ec);
            state_ = state::closing;
            if (ec) finish_close(code, reason);
        } else if (state_ == state::connecting) {
            drop_connection();
            state_ = state::idle;
        }
    }

    /// Sends `m` now when connected, else queues it (see options::max_queued).
    send_status send(message m) {
        if (state_ == state::open) {
            write(m);
            return send_status::sent;
        }
        if (queue_.size() >= options_.max_queued) {
            report(error_kind::queue_full, "send queue full (" + std::to_string(options_.max_queued) +
                                               " messages while disconnected): message dropped");
            return send_status::dropped;
        }
        queue_.push_back(std::move(m));
        return send_status::queued;
    }

    /// Sends op 2 with `credentials` merged with `{shouldSync}` (now, or first
    /// thing on the next open). `done` gets the user object of op 22 or an
    /// error (see the header comment). A newer call supersedes a pending one.
    void authenticate(json::object credentials, authenticate_handler done = {}, authenticate_options o = {}) {
        fail_authentication("superseded by a newer authenticate()", 0);
        credentials["shouldSync"] = o.should_sync;
        credentials_ = std::move(credentials);
        auth_handler_ = std::move(done);
        expire_at(o.expires_at ? o.expires_at : token_expiry(*credentials_));
        if (state_ == state::open) send_credentials();
    }

    // ---- state ----
    bool connected() const noexcept { return state_ == state::open; }
    bool authenticated() const noexcept { return authenticated_; }
    /// The user object of the last op 22 on this connection.
    json::value const& user() const noexcept { return user_; }
    /// Is a reconnection scheduled?
    bool reconnecting() const noexcept { return reconnect_pending_; }
    /// Messages waiting for a connection.
    std::size_t queued() const noexcept { return queue_.size(); }
    /// True when nothing is queued and every frame was handed to the socket.
    bool flushed() const { return queue_.empty() && state_ == state::open && con_ && con_->get_buffered_amount() == 0; }
    std::string const& url() const noexcept { return url_; }

    // ---- what the last hello said ----
    std::optional<milliseconds> heartbeat_interval() const noexcept { return heartbeat_interval_; }
    std::optional<milliseconds> reconnect_interval() const noexcept { return reconnect_interval_; }
    std::optional<milliseconds> server_authentication_timeout() const noexcept { return server_auth_timeout_; }
    std::vector<std::string> const& rules() const noexcept { return rules_; }
    bool has_rule(std::string const& r) const {
        for (auto const& x : rules_)
            if (x == r) return true;
        return false;
    }

    // ---- store_messages ----
    bool stores_messages() const noexcept { return store_messages_; }
    /// Frames sent since the server asked to store them (heartbeat acks excluded).
    std::deque<message> const& sent_messages() const noexcept { return sent_; }
    /// Messages received (those passed to on_message) since then.
    std::deque<message> const& received_messages() const noexcept { return received_; }

private:
    enum class state { idle, connecting, open, closing };

    static std::string check_url(std::string const& url) {
        std::string const name = socket_traits::client_name;
        std::string const scheme = socket_traits::scheme;
        websocketpp::uri u(url);
        if (u.get_valid() && (u.get_scheme() == "ws" || u.get_scheme() == "wss") && u.get_scheme() != scheme)
            throw std::invalid_argument(name + ": \"" + url + "\": " + socket_traits::wrong_scheme_hint);
        if (!u.get_valid() || u.get_scheme() != scheme || u.get_host().empty())
            throw std::invalid_argument(name + ": not a " + scheme + ":// URL: \"" + url + "\"");
        return url;
    }

    void open_connection(bool automatic) {
        websocketpp::lib::error_code ec;
        auto con = endpoint_.get_connection(url_, ec);
        if (ec) {
            after_close();
            report(error_kind::connection_failed, "cannot connect to " + url_ + ": " + ec.message());
            return;
        }
        auto const gen = ++generation_;
        con->set_open_handler([this, gen](websocketpp::connection_hdl) {
            if (gen == generation_) opened();
        });
        con->set_message_handler([this, gen](websocketpp::connection_hdl, message_ptr msg) {
            if (gen == generation_) received(msg);
        });
        con->set_close_handler([this, gen](websocketpp::connection_hdl) {
            if (gen == generation_) closed();
        });
        con->set_fail_handler([this, gen](websocketpp::connection_hdl) {
            if (gen == generation_) failed();
        });
        con_ = con;
        state_ = state::connecting;
        automatic_ = automatic;
        auth_sent_ = false;
        security_.on_attempt();
        endpoint_.connect(con);
    }

    void opened() {
        state_ = state::open;
        schedule_.on_open();
        connection_info info{is_initial_connection_, is_initial_session_connection_, automatic_};
        is_initial_connection_ = false;
        is_initial_session_connection_ = false;
        // Credentials first, then the queue in order, then the event: a send()
        // from the handler must not overtake what was queued before it.
        if (credentials_ && (auth_handler_ || options_.reauthenticate)) send_credentials();
        auto pending = std::move(queue_);
        queue_.clear();
        for (auto& m : pending) {
            if (state_ != state::open) {  // closed meanwhile: keep the rest for the next open
                queue_.push_back(std::move(m));
                continue;
            }
            write(m);
        }
        if (on_connected_) on_connected_(info);
    }

    void received(message_ptr const& msg) {
        if (msg->get_opcode() != websocketpp::frame::opcode::text) {
            report(error_kind::bad_frame, "binary frame from the server ignored");
            return;
        }
        auto r = parse(msg->get_payload());
        if (!r) {
            report(error_kind::bad_frame, "bad frame from the server ignored: " + r.error().reason);
            return;
        }
        message& m = r.value();
        switch (m.op) {
            case opcode::heartbeat:
                write(message(opcode::heartbeat_ack, {}));
                return;
            case opcode::hello:
                hello(m.d);
                return;
            case opcode::authenticated:
                authenticated_ = true;
                user_ = json::value(std::move(m.d));
                ++auth_token_;  // the deadline no longer applies
                auth_timer_.cancel();
                if (on_authenticated_) on_authenticated_(user_);
                if (auto h = std::move(auth_handler_)) {
                    auth_handler_ = nullptr;
                    authentication_result result;
                    result.user = user_;
                    h(result);
                }
                return;
            default:
                break;
        }
        if (store_messages_) store(received_, m);
        if (on_message_) on_message_(m);
    }

    static std::optional<milliseconds> interval(json::object const& d, char const* key) {
        auto const* v = d.if_contains(key);
        if (!v) return std::nullopt;
        if (v->is_int64() && v->get_int64() > 0) return milliseconds(v->get_int64());
        if (v->is_uint64())
            return milliseconds(static_cast<std::int64_t>(std::min<std::uint64_t>(v->get_uint64(), INT32_MAX)));
        if (v->is_double() && v->get_double() >= 1 && v->get_double() < 2e9)
            return milliseconds(static_cast<std::int64_t>(v->get_double()));
        return std::nullopt;
    }

    void hello(json::object const& d) {
        heartbeat_interval_ = interval(d, "c_heartbeat_interval");
        reconnect_interval_ = interval(d, "c_reconnect_interval");
        server_auth_timeout_ = interval(d, "c_authentication_timeout");
        schedule_.on_hello(reconnect_interval_);
        rules_.clear();
        if (auto const* rules = d.if_contains("rules"); rules && rules->is_array()) {
            for (auto const& r : rules->get_array())
                if (r.is_string()) rules_.emplace_back(r.get_string());
        } else {
            report(error_kind::bad_frame, "hello without a \"rules\" array (taken as no rules)");
        }
        if (has_rule("store_messages")) store_messages_ = true;
        if (has_rule("enforce_equal_versions")) write(message("CLIENT_VERSION", {{"v", options_.version}}));
    }

    void closed() {
        // The code the server sent, or ours when we closed first, or 1006.
        auto code = con_->get_remote_close_code();
        auto reason = con_->get_remote_close_reason();
        if (code == websocketpp::close::status::no_status || code == websocketpp::close::status::abnormal_close) {
            if (con_->get_local_close_code() != websocketpp::close::status::no_status) {
                code = con_->get_local_close_code();
                reason = con_->get_local_close_reason();
            } else {
                code = websocketpp::close::status::abnormal_close;
            }
        }
        finish_close(code, reason);
    }

    void finish_close(std::uint16_t code, std::string const& reason) {
        bool const carried_credentials = auth_sent_;
        detach();
        if (code == close_code::token_expired && carried_credentials) {
            report(error_kind::authentication, "the server closed with 4004: the credentials expired");
            if (on_refresh_)
                refresh(true);
            else
                credentials_.reset();  // sent again they would be refused
        }
        if (code == close_code::policy_violation && carried_credentials) {
            // Refused credentials would be refused again on every reconnection.
            credentials_.reset();
            report(error_kind::authentication, "authentication refused by the server (1008" +
                                                   (reason.empty() ? std::string() : ": " + reason) + ")");
        }
        if (carried_credentials) {
            fail_authentication(code == close_code::policy_violation
                                    ? "authentication refused by the server (1008" +
                                          (reason.empty() ? std::string() : ": " + reason) + ")"
                                    : "connection closed before op 22 (" + std::to_string(code) +
                                          (reason.empty() ? std::string() : ": " + reason) + ")",
                                code);
        }
        // Arm first: a handler calling connect() then cancels this timer.
        bool const will = after_close();
        if (on_disconnected_) on_disconnected_({code, reason, will});
    }

    void failed() {
        std::string why = con_ ? con_->get_ec().message() : std::string("unknown error");
        if (auto const detail = security_.failure(); !detail.empty()) why += " (" + detail + ")";
        if (con_) {
            auto status = con_->get_response().get_status_code();
            if (status != websocketpp::http::status_code::uninitialized && status != 101)
                why += " (HTTP " + std::to_string(static_cast<int>(status)) + ")";
        }
        detach();
        after_close();  // first, so the error handler sees reconnecting()
        report(error_kind::connection_failed, "cannot connect to " + url_ + ": " + why);
    }

    /// Forgets the current connection (state idle, not authenticated).
    void detach() {
        ++generation_;
        con_.reset();
        state_ = state::idle;
        authenticated_ = false;
        auth_sent_ = false;
        ++auth_token_;
        auth_timer_.cancel();
    }

    /// Schedules the next attempt when the schedule allows one.
    bool after_close() {
        std::uniform_real_distribution<double> uniform(0.0, 1.0);
        auto delay = schedule_.on_close(uniform(rng_));
        if (!delay) return false;
        auto const token = ++reconnect_token_;
        reconnect_pending_ = true;
        reconnect_timer_.expires_after(*delay);
        reconnect_timer_.async_wait([this, token, alive = std::weak_ptr<int>(alive_)](std::error_code ec) {
            if (ec || alive.expired() || token != reconnect_token_) return;
            reconnect_pending_ = false;
            if (state_ == state::idle) open_connection(true);
        });
        return true;
    }

    void cancel_reconnect() {
        ++reconnect_token_;
        reconnect_pending_ = false;
        reconnect_timer_.cancel();
    }

    /// Detaches the handlers of the connection in progress and aborts it.
    void drop_connection() {
        if (!con_) return;
        auto con = std::move(con_);
        ++generation_;
        con->set_open_handler(nullptr);
        con->set_message_handler(nullptr);
        con->set_close_handler(nullptr);
        con->set_fail_handler(nullptr);
        websocketpp::lib::error_code ec;
        con->terminate(ec);
    }

    void send_credentials() {
        write(message(opcode::authenticate, *credentials_));
        auth_sent_ = true;
        if (!auth_handler_ || options_.authentication_timeout.count() <= 0) return;
        auto const token = ++auth_token_;
        auth_timer_.expires_after(options_.authentication_timeout);
        auth_timer_.async_wait([this, token, alive = std::weak_ptr<int>(alive_)](std::error_code ec) {
            if (ec || alive.expired() || token != auth_token_) return;
            report(error_kind::authentication,
                   "no op 22 within " + std::to_string(options_.authentication_timeout.count()) + " ms");
            fail_authentication("no op 22 within " + std::to_string(options_.authentication_timeout.count()) + " ms",
                                0);
        });
    }

    static std::optional<std::chrono::system_clock::time_point> token_expiry(json::object const& credentials) {
        auto const* token = credentials.if_contains("token");
        if (!token || !token->is_string()) return std::nullopt;
        return detail::jwt_expiry(token->get_string());
    }

    /// Arms the refresh of credentials expiring at `at` (unset: none).
    void expire_at(std::optional<std::chrono::system_clock::time_point> at) {
        expires_at_ = at;
        auto const token = ++refresh_token_;
        refresh_timer_.cancel();
        if (!at) return;
        auto const left = std::chrono::duration_cast<milliseconds>(*at - std::chrono::system_clock::now());
        auto const wait = left - std::min(options_.refresh_ahead, left / 2);
        refresh_timer_.expires_after(std::max(wait, milliseconds(0)));
        refresh_timer_.async_wait([this, token, alive = std::weak_ptr<int>(alive_)](std::error_code ec) {
            if (ec || alive.expired() || token != refresh_token_) return;
            refresh(false);
        });
    }

    /// Asks the application for fresh credentials; `closed`: after a 4004.
    void refresh(bool closed) {
        if (!on_refresh_) return;
        auto const token = ++refresh_token_;
        on_refresh_([this, token, closed, alive = std::weak_ptr<int>(alive_)](json::object fresh) {
            if (alive.expired() || token != refresh_token_) return;  // superseded
            auto const* sync = credentials_ ? credentials_->if_contains("shouldSync") : nullptr;
            fresh["shouldSync"] = sync ? *sync : json::value(true);
            credentials_ = std::move(fresh);
            expire_at(token_expiry(*credentials_));
            if (state_ == state::open && authenticated_) {
                write(message(opcode::authenticate, *credentials_));  // a refresh: the server sends no op 22
            } else if (state_ == state::open) {
                send_credentials();
            } else if (closed && state_ == state::idle && !reconnect_pending_) {
                open_connection(true);
            }
        });
    }

    void fail_authentication(std::string what, std::uint16_t code) {
        if (!auth_handler_) return;
        auto h = std::move(auth_handler_);
        auth_handler_ = nullptr;
        authentication_result result;
        result.error = std::move(what);
        result.close_code = code;
        h(result);
    }

    void write(message const& m) {
        websocketpp::lib::error_code ec;
        ec = con_->send(serialize(m), websocketpp::frame::opcode::text);
        if (ec) {
            report(error_kind::send_failed, "cannot send a frame: " + ec.message());
            return;
        }
        if (store_messages_ && m.op != opcode::heartbeat_ack) store(sent_, m);
    }

    void store(std::deque<message>& list, message const& m) {
        if (options_.max_stored_messages == 0) return;
        if (list.size() >= options_.max_stored_messages) list.pop_front();
        list.push_back(m);
    }

    void report(error_kind kind, std::string what) {
        if (on_error_) on_error_(error{kind, std::move(what)});
    }

    asio::io_context& ioc_;
    options options_;
    std::string url_;
    typename socket_traits::security security_;
    endpoint_type endpoint_;
    connection_ptr con_;
    state state_ = state::idle;
    std::uint64_t generation_ = 0;  // handlers of older connections are ignored
    bool automatic_ = false;
    bool auto_connect_cancelled_ = false;

    client_detail::reconnect_schedule schedule_;
    asio::steady_timer reconnect_timer_;
    std::uint64_t reconnect_token_ = 0;  // a cancelled timer whose handler is already queued is ignored
    bool reconnect_pending_ = false;

    bool is_initial_connection_ = true;
    bool is_initial_session_connection_ = true;

    std::deque<message> queue_;

    std::optional<json::object> credentials_;
    authenticate_handler auth_handler_;
    bool auth_sent_ = false;  // op 2 went out on the current connection
    bool authenticated_ = false;
    json::value user_;
    asio::steady_timer auth_timer_;
    std::uint64_t auth_token_ = 0;
    asio::steady_timer refresh_timer_;  // options::refresh_ahead before the credentials expire
    std::uint64_t refresh_token_ = 0;
    std::optional<std::chrono::system_clock::time_point> expires_at_;  // of the current credentials
    std::function<void(credentials_callback)> on_refresh_;

    std::optional<milliseconds> heartbeat_interval_;
    std::optional<milliseconds> reconnect_interval_;
    std::optional<milliseconds> server_auth_timeout_;
    std::vector<std::string> rules_;

    bool store_messages_ = false;
    std::deque<message> sent_;
    std::deque<message> received_;

    std::minstd_rand rng_;
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // guards posted work after destruction

    std::function<void(connection_info const&)> on_connected_;
    std::function<void(message const&)> on_message_;
    std::function<void(disconnection const&)> on_disconnected_;
    std::function<void(error const&)> on_error_;
    std::function<void(json::value const&)> on_authenticated_;
    std::function<void(transport::log_level, std::string const&)> on_log_;
};

/// The ws:// client (see the top of this header).
using client = socket_client<websocketpp::transport::asio::basic_socket::endpoint>;

}  // namespace mesa
