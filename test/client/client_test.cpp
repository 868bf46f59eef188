// mesa::client: its reconnect schedule without sockets, then the client
// against our server over real sockets (server and client on one io_context
// driven by one thread), and against a raw websocketpp server that sends bad
// frames.
#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <mesa/client.hpp>  // first: the header is self-contained
#include <mesa/mesa.hpp>
#include <string>
#include <vector>
#include <websocketpp/config/asio_no_tls.hpp>
#include <websocketpp/server.hpp>

#include "../support/ws_test_client.hpp"

namespace {

using namespace std::chrono_literals;
using mesa_test::run_for;
using mesa_test::wait_until;
using schedule = mesa::client_detail::reconnect_schedule;
namespace json = boost::json;

using full_server = mesa::basic_server<mesa::heartbeat, mesa::reconnect, mesa::authentication, mesa::sync>;

/// Our server with heartbeat (short interval), reconnect, authentication
/// (token = id, "bad" fails) and sync, recording what it received.
struct our_server {
    asio::io_context& ioc;
    full_server::options options;
    std::unique_ptr<full_server> server;
    std::vector<mesa::message> received;  // application messages, in order
    std::vector<std::uint16_t> disconnections;
    std::size_t connections = 0;
    std::size_t authentications = 0;

    our_server(asio::io_context& c, std::uint16_t port = 0, long heartbeat_ms = 50, long reconnect_ms = 50) : ioc(c) {
        options.port = port;
        options.feature<mesa::heartbeat>().interval = std::chrono::milliseconds(heartbeat_ms);
        // Answers are counted where it matters, not timed: a busy machine
        // may delay a few of them without closing the client.
        options.feature<mesa::heartbeat>().max_attempts = 5;
        options.feature<mesa::reconnect>().interval = std::chrono::milliseconds(reconnect_ms);
        server = std::make_unique<full_server>(ioc, options);
        server->feature<mesa::authentication>().on_authenticate(
            [this](auto const&, json::object const& credentials, mesa::authentication::done done) {
                auto const* token = credentials.if_contains("token");
                if (!token || !token->is_string()) return done.fail("no token");
                std::string const id(token->get_string());
                if (id == "bad") return done.fail("bad token");
                ++authentications;
                done.succeed(id, json::object{{"id", id}, {"name", "User " + id}});
            });
        server->on_connection([this](auto const&) { ++connections; });
        server->on_message([this](auto const& client, mesa::message const& m) {
            received.push_back(m);
            if (m.t && *m.t == "PING") client->send(mesa::message("PONG", m.d));
        });
        server->on_disconnection(
            [this](auto const&, std::uint16_t code, std::string const&) { disconnections.push_back(code); });
        server->start();
        REQUIRE(server->port() != 0);
    }
    std::uint16_t port() { return server->port(); }
    std::string url() { return "ws://127.0.0.1:" + std::to_string(port()); }
    std::size_t count(char const* type) const {
        std::size_t n = 0;
        for (auto const& m : received)
            if (m.t && *m.t == type) ++n;
        return n;
    }
    void stop() {
        server->stop();
        run_for(ioc, 20ms);
        server.reset();
    }
    ~our_server() {
        if (server) stop();
    }
};

/// What a client reported.
struct recorder {
    std::vector<mesa::client::connection_info> connected;
    std::vector<mesa::client::disconnection> disconnected;
    std::vector<mesa::client::error> errors;
    std::vector<mesa::message> messages;
    std::vector<json::value> authenticated;

    explicit recorder(mesa::client& c) {
        c.on_connected([this](auto const& i) { connected.push_back(i); });
        c.on_disconnected([this](auto const& d) { disconnected.push_back(d); });
        c.on_error([this](auto const& e) { errors.push_back(e); });
        c.on_message([this](auto const& m) { messages.push_back(m); });
        c.on_authenticated([this](auto const& u) { authenticated.push_back(u); });
    }
    std::size_t errors_of(mesa::client::error_kind k) const {
        std::size_t n = 0;
        for (auto const& e : errors)
            if (e.kind == k) ++n;
        return n;
    }
    std::size_t count(char const* type) const {
        std::size_t n = 0;
        for (auto const& m : messages)
            if (m.t && *m.t == type) ++n;
        return n;
    }
};

/// Lets the close handshakes finish before the io_context goes away.
void settle(asio::io_context& ioc, mesa::client& c) {
    c.disconnect();
    wait_until(
        ioc, [&] { return !c.connected(); }, 1000ms);
    run_for(ioc, 20ms);
}

}  // namespace

// ---- the reconnect schedule, without sockets ----------------------------

TEST_CASE("reconnect schedule: no interval known, no reconnection") {
    schedule s;
    CHECK_FALSE(s.on_close(0.5));
    CHECK_FALSE(s.will_reconnect());
}

TEST_CASE("reconnect schedule: the hello's interval, doubled per failure, capped, with jitter") {
    schedule s({std::chrono::milliseconds(1000), 0.2, std::nullopt});
    s.on_hello(std::chrono::milliseconds(100));
    CHECK(s.will_reconnect());
    CHECK(*s.on_close(0.5) == 100ms);  // u = 0.5: factor 1
    CHECK(*s.on_close(0.5) == 200ms);
    CHECK(*s.on_close(0.5) == 400ms);
    CHECK(*s.on_close(0.5) == 800ms);
    CHECK(*s.on_close(0.5) == 1000ms);    // capped
    CHECK(*s.on_close(0.0) == 800ms);     // jitter -20 %
    CHECK(*s.on_close(0.999) <= 1000ms);  // +20 % but capped again
    s.on_open();
    CHECK(s.failures() == 0);
    CHECK(*s.on_close(0.0) == 80ms);
    CHECK(*s.on_close(1.0) == 240ms);  // 200 * 1.2
}

TEST_CASE("reconnect schedule: never after disconnect(), again after connect()") {
    schedule s;
    s.on_hello(std::chrono::milliseconds(50));
    s.on_disconnect_requested();
    CHECK_FALSE(s.will_reconnect());
    CHECK_FALSE(s.on_close(0.5));
    CHECK_FALSE(s.on_close(0.5));
    s.on_connect_requested();
    CHECK(s.will_reconnect());
    CHECK(*s.on_close(0.5) == 50ms);
}

TEST_CASE(
    "reconnect schedule: fallback interval when the server advertises none; a zero interval is "
    "none") {
    schedule s({std::chrono::milliseconds(30000), 0.0, std::chrono::milliseconds(300)});
    CHECK(*s.on_close(0.3) == 300ms);
    s.on_hello(std::chrono::milliseconds(0));
    CHECK(*s.interval() == 300ms);
    s.on_hello(std::chrono::milliseconds(70));
    CHECK(*s.interval() == 70ms);
    s.on_hello(std::nullopt);
    CHECK(*s.interval() == 300ms);
}

// ---- construction ---------------------------------------------------------

TEST_CASE("client: URLs other than ws:// are refused with a clear message") {
    asio::io_context ioc;
    // wss:// names the header and type that take it (mesa::client links no OpenSSL).
    CHECK_THROWS_WITH_AS(mesa::client(ioc, "wss://example.com/"),
                         doctest::Contains("include <mesa/client_tls.hpp> and use mesa::tls_client"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(mesa::client(ioc, "http://example.com/"), doctest::Contains("not a ws:// URL"),
                         std::invalid_argument);
    CHECK_THROWS_AS(mesa::client(ioc, "nonsense"), std::invalid_argument);
    CHECK_NOTHROW(mesa::client(ioc, "ws://127.0.0.1:1/x", {}));
}

TEST_CASE("client: the send queue is bounded; past it messages are dropped and reported") {
    asio::io_context ioc;
    mesa::client::options o;
    o.auto_connect = false;
    o.max_queued = 2;
    mesa::client c{ioc, "ws://127.0.0.1:1", o};
    recorder r{c};
    CHECK(c.send(mesa::message("A", {})) == mesa::client::send_status::queued);
    CHECK(c.send(mesa::message("B", {})) == mesa::client::send_status::queued);
    CHECK(c.send(mesa::message("C", {})) == mesa::client::send_status::dropped);
    CHECK(c.queued() == 2);
    CHECK(r.errors_of(mesa::client::error_kind::queue_full) == 1);
}

TEST_CASE("client: a refused connection is an error event, no crash, no reconnection without a hello") {
    asio::io_context ioc;
    std::uint16_t port = 0;
    {
        our_server s{ioc};
        port = s.port();
    }
    mesa::client c{ioc, "ws://127.0.0.1:" + std::to_string(port)};
    recorder r{c};
    REQUIRE(wait_until(ioc, [&] { return !r.errors.empty(); }));
    CHECK(r.errors[0].kind == mesa::client::error_kind::connection_failed);
    CHECK(r.errors[0].what.find("cannot connect to ws://127.0.0.1:") == 0);
    CHECK_FALSE(c.reconnecting());
    CHECK(r.disconnected.empty());
}

// ---- against our server ----------------------------------------------------

TEST_CASE("client: hello read, heartbeats answered over several intervals, PING answered") {
    asio::io_context ioc;
    our_server s{ioc};  // heartbeat 50 ms
    mesa::client c{ioc, s.url()};
    recorder r{c};
    REQUIRE(wait_until(ioc, [&] { return c.connected() && c.heartbeat_interval().has_value(); }));
    CHECK(r.connected.size() == 1);
    CHECK(r.connected[0].is_initial_connection);
    CHECK(r.connected[0].is_initial_session_connection);
    CHECK_FALSE(r.connected[0].is_automatic_reconnection);
    CHECK(*c.heartbeat_interval() == 50ms);
    CHECK(*c.reconnect_interval() == 50ms);
    CHECK(*c.server_authentication_timeout() == 10000ms);
    CHECK(c.has_rule("sends_user_object"));
    CHECK_FALSE(c.has_rule("store_messages"));

    // Ten beats answered: the server reads ten op 11 (the client sends nothing else meanwhile).
    auto const before = s.server->stats().messages_received;
    REQUIRE(wait_until(
        ioc, [&] { return s.server->stats().messages_received >= before + 10; }, 10000ms));
    CHECK(c.connected());
    CHECK(r.disconnected.empty());
    CHECK(s.disconnections.empty());
    CHECK(r.connected.size() == 1);

    c.send(mesa::message("PING", {{"n", 1}}));
    REQUIRE(wait_until(ioc, [&] { return r.count("PONG") == 1; }));
    CHECK(r.messages.back().d == json::object{{"n", 1}});
    CHECK(r.errors.empty());
    settle(ioc, c);
}

TEST_CASE("client: authenticate completes with the user object of op 22") {
    asio::io_context ioc;
    our_server s{ioc};
    mesa::client c{ioc, s.url()};
    recorder r{c};
    std::optional<mesa::client::authentication_result> result;
    c.authenticate({{"token", "alice"}}, [&](auto const& res) { result = res; });  // before the socket opened
    REQUIRE(wait_until(ioc, [&] { return result.has_value(); }));
    REQUIRE(*result);
    CHECK(result->user == json::value(json::object{{"id", "alice"}, {"name", "User alice"}}));
    CHECK(c.authenticated());
    CHECK(r.authenticated.size() == 1);
    settle(ioc, c);
}

TEST_CASE("client: refused credentials (1008) fail authenticate and are not re-sent") {
    asio::io_context ioc;
    our_server s{ioc};
    mesa::client c{ioc, s.url()};
    recorder r{c};
    std::optional<mesa::client::authentication_result> result;
    c.authenticate({{"token", "bad"}}, [&](auto const& res) { result = res; });
    REQUIRE(wait_until(ioc, [&] { return result.has_value(); }));
    CHECK_FALSE(*result);
    CHECK(result->close_code == mesa::close_code::policy_violation);
    CHECK(result->error->find("1008") != std::string::npos);
    REQUIRE(wait_until(ioc, [&] { return r.connected.size() == 2; }));  // reconnected after 1008...
    run_for(ioc, 100ms);
    CHECK(s.authentications == 0);
    CHECK(s.disconnections.size() == 1);  // ...and not refused again: no credentials sent
    CHECK(r.errors_of(mesa::client::error_kind::authentication) == 1);
    settle(ioc, c);
}

TEST_CASE("client: synced messages arrive with s in order after authentication") {
    asio::io_context ioc;
    our_server s{ioc};
    for (int n = 1; n <= 5; ++n) s.server->send(mesa::message("SYNCED", {{"n", n}}), {"bob"});
    mesa::client c{ioc, s.url()};
    recorder r{c};
    c.authenticate({{"token", "bob"}});
    REQUIRE(wait_until(ioc, [&] { return r.count("SYNCED") == 5; }));
    for (int i = 0; i < 5; ++i) {
        CHECK(r.messages[i].d.at("n") == i + 1);
        REQUIRE(r.messages[i].s);
        CHECK(*r.messages[i].s == i + 1);
    }
    settle(ioc, c);
}

TEST_CASE("client: should_sync false drops the synced messages") {
    asio::io_context ioc;
    our_server s{ioc};
    s.server->send(mesa::message("SYNCED", {{"n", 1}}), {"carol"});
    mesa::client c{ioc, s.url()};
    recorder r{c};
    bool done = false;
    c.authenticate({{"token", "carol"}}, [&](auto const&) { done = true; }, {false});
    REQUIRE(wait_until(ioc, [&] { return done; }));
    // Redelivery would come first: a message sent after authentication comes behind it.
    s.server->send(mesa::message("AFTER", {}), {"carol"});
    REQUIRE(wait_until(ioc, [&] { return r.count("AFTER") == 1; }));
    CHECK(r.count("SYNCED") == 0);
    settle(ioc, c);
}

TEST_CASE(
    "client: after a server restart it reconnects, re-authenticates and flushes its queue in "
    "order") {
    asio::io_context ioc;
    auto s = std::make_unique<our_server>(ioc);
    auto const port = s->port();
    auto const url = s->url();
    mesa::client c{ioc, url};
    recorder r{c};
    c.authenticate({{"token", "dave"}});
    REQUIRE(wait_until(ioc, [&] { return c.authenticated(); }));

    s->stop();
    s.reset();
    REQUIRE(wait_until(ioc, [&] { return !r.disconnected.empty(); }));
    CHECK(r.disconnected[0].code == mesa::close_code::going_away);
    CHECK(r.disconnected[0].will_attempt_reconnect);
    for (int n = 1; n <= 5; ++n) CHECK(c.send(mesa::message("Q", {{"n", n}})) == mesa::client::send_status::queued);
    // Refused attempts meanwhile; between attempts a reconnection is scheduled (during one it is not).
    REQUIRE(wait_until(
        ioc, [&] { return r.errors_of(mesa::client::error_kind::connection_failed) >= 2; }, 10000ms));
    CHECK(wait_until(
        ioc, [&] { return c.reconnecting(); }, 5000ms));

    s = std::make_unique<our_server>(ioc, port);
    REQUIRE(wait_until(
        ioc, [&] { return s->count("Q") == 5; }, 5000ms));
    for (int i = 0; i < 5; ++i) CHECK(s->received[i].d.at("n") == i + 1);
    REQUIRE(r.connected.size() == 2);
    CHECK_FALSE(r.connected[1].is_initial_connection);
    CHECK_FALSE(r.connected[1].is_initial_session_connection);
    CHECK(r.connected[1].is_automatic_reconnection);
    REQUIRE(wait_until(ioc, [&] { return r.authenticated.size() == 2; }));
    CHECK(s->authentications == 1);
    CHECK(c.queued() == 0);
    settle(ioc, c);
}

TEST_CASE("client: no reconnection after disconnect(), until connect()") {
    asio::io_context ioc;
    our_server s{ioc};
    mesa::client c{ioc, s.url()};
    recorder r{c};
    REQUIRE(wait_until(ioc, [&] { return c.connected() && c.reconnect_interval(); }));
    c.disconnect();
    REQUIRE(wait_until(ioc, [&] { return !r.disconnected.empty(); }));
    CHECK(r.disconnected[0].code == mesa::close_code::normal);
    CHECK_FALSE(r.disconnected[0].will_attempt_reconnect);
    run_for(ioc, 300ms);  // six reconnect intervals
    CHECK(s.connections == 1);
    CHECK_FALSE(c.reconnecting());
    CHECK(s.disconnections == std::vector<std::uint16_t>{mesa::close_code::normal});

    c.connect();
    REQUIRE(wait_until(ioc, [&] { return c.connected(); }));
    REQUIRE(r.connected.size() == 2);
    CHECK_FALSE(r.connected[1].is_initial_connection);
    CHECK(r.connected[1].is_initial_session_connection);
    CHECK_FALSE(r.connected[1].is_automatic_reconnection);
    settle(ioc, c);
}

TEST_CASE("client: version rule and message store rules are honoured") {
    using rules_server = mesa::basic_server<mesa::version_rule, mesa::message_store>;
    asio::io_context ioc;
    rules_server::options so;
    so.port = 0;
    rules_server server{ioc, so};
    std::vector<std::uint16_t> closes;
    server.on_disconnection([&](auto const&, std::uint16_t code, std::string const&) { closes.push_back(code); });
    server.start();
    std::string const url = "ws://127.0.0.1:" + std::to_string(server.port());

    mesa::client good{ioc, url};
    mesa::client::options bad_options;
    bad_options.version = "0.0.0-other";
    mesa::client bad{ioc, url, bad_options};
    recorder rb{bad};
    REQUIRE(wait_until(ioc, [&] { return !rb.disconnected.empty(); }));
    CHECK(rb.disconnected[0].code == mesa::close_code::protocol_error);
    REQUIRE(wait_until(ioc, [&] { return good.connected() && good.stores_messages(); }));
    good.send(mesa::message("HELLO", {}));
    run_for(ioc, 100ms);
    CHECK(good.connected());
    CHECK(good.has_rule("enforce_equal_versions"));
    REQUIRE(good.sent_messages().size() == 2);
    CHECK(*good.sent_messages()[0].t == "CLIENT_VERSION");
    CHECK(good.sent_messages()[0].d.at("v") == mesa::version_string);
    CHECK(*good.sent_messages()[1].t == "HELLO");
    CHECK(closes == std::vector<std::uint16_t>{mesa::close_code::protocol_error});
    bad.disconnect();
    settle(ioc, good);
    server.stop();
    run_for(ioc, 20ms);
}

// ---- against a server that misbehaves -----------------------------------------

TEST_CASE("client: bad frames from a server are reported and ignored, never a crash") {
    using raw_server = websocketpp::server<websocketpp::config::asio>;
    asio::io_context ioc;
    raw_server raw;
    raw.clear_access_channels(websocketpp::log::alevel::all);
    raw.clear_error_channels(websocketpp::log::elevel::all);
    raw.init_asio(&ioc);
    raw.set_reuse_addr(true);
    raw.set_open_handler([&raw](websocketpp::connection_hdl h) {
        using op = websocketpp::frame::opcode::value;
        for (char const* text : {"{\"op\":10,\"d\":{}}",  // no rules: the reference crashes
                                 "not json", "[1,2]", "{\"op\":\"zero\"}", "{\"op\":0,\"d\":5}",
                                 "{\"op\":0,\"d\":{},\"s\":-1}", "{\"op\":1,\"d\":{\"tries\":1}}"})
            raw.send(h, text, op::text);
        raw.send(h, std::string("\x01\x02", 2), op::binary);
        raw.send(h, "{\"op\":0,\"d\":{\"x\":1},\"t\":\"OK\"}", op::text);
    });
    std::vector<std::string> got;
    raw.set_message_handler(
        [&](websocketpp::connection_hdl, raw_server::message_ptr m) { got.push_back(m->get_payload()); });
    websocketpp::lib::error_code ec;
    raw.listen(asio::ip::tcp::v4(), 0, ec);
    REQUIRE_FALSE(ec);
    raw.start_accept();
    auto const port = raw.get_local_endpoint(ec).port();

    mesa::client c{ioc, "ws://127.0.0.1:" + std::to_string(port)};
    recorder r{c};
    REQUIRE(wait_until(ioc, [&] { return r.count("OK") == 1; }));
    CHECK(r.messages.size() == 1);
    CHECK(r.errors_of(mesa::client::error_kind::bad_frame) == 7);  // rules + 4 invalid + s + binary
    CHECK(c.connected());
    REQUIRE(wait_until(ioc, [&] { return !got.empty(); }));
    CHECK(got[0] == "{\"op\":11,\"d\":{}}");
    settle(ioc, c);
    raw.stop_listening(ec);
    run_for(ioc, 20ms);
}

// ---- credentials that expire ---------------------------------------------

namespace {

using session_server = mesa::basic_server<mesa::authentication>;

/// A server admitting {token: id, ttl_ms} until ttl_ms from now.
struct expiring_server {
    asio::io_context& ioc;
    session_server server;
    std::size_t authentications = 0;
    std::vector<std::uint16_t> disconnections;

    explicit expiring_server(asio::io_context& c) : ioc(c), server(c, options()) {
        server.feature<mesa::authentication>().on_authenticate(
            [this](auto const&, json::object const& credentials, mesa::authentication::done done) {
                ++authentications;
                std::string const id(credentials.at("token").as_string());
                auto const ttl = std::chrono::milliseconds(credentials.at("ttl_ms").to_number<int>());
                done.succeed(id, json::object{{"id", id}}, std::chrono::system_clock::now() + ttl);
            });
        server.on_disconnection(
            [this](auto const&, std::uint16_t code, std::string const&) { disconnections.push_back(code); });
        server.start();
    }
    static session_server::options options() {
        session_server::options o;
        o.port = 0;
        return o;
    }
    std::string url() { return "ws://127.0.0.1:" + std::to_string(server.port()); }
};

}  // namespace

TEST_CASE("client: after a 4004 it asks for fresh credentials and connects again with them") {
    asio::io_context ioc;
    expiring_server s{ioc};
    mesa::client c{ioc, s.url()};
    recorder r{c};
    int asked = 0;
    c.on_refresh([&](mesa::client::credentials_callback provide) {
        ++asked;
        provide({{"token", "alice"}, {"ttl_ms", 60000}});
    });
    mesa::client::authenticate_options o;
    o.expires_at = std::chrono::system_clock::now() + std::chrono::hours(1);  // the client does not know better
    c.authenticate({{"token", "alice"}, {"ttl_ms", 150}}, {}, o);
    REQUIRE(wait_until(ioc, [&] { return !r.disconnected.empty(); }));
    CHECK(r.disconnected[0].code == mesa::close_code::token_expired);
    REQUIRE(wait_until(ioc, [&] { return s.authentications == 2 && c.authenticated(); }));
    CHECK(asked == 1);
    CHECK(r.connected.size() == 2);
    CHECK(r.errors_of(mesa::client::error_kind::authentication) == 1);
    settle(ioc, c);
}

TEST_CASE("client: it refreshes before a known expiry on the open connection; the server keeps it") {
    asio::io_context ioc;
    expiring_server s{ioc};
    mesa::client::options co;
    co.refresh_ahead = 150ms;
    mesa::client c{ioc, s.url(), co};
    recorder r{c};
    int asked = 0;
    c.on_refresh([&](mesa::client::credentials_callback provide) {
        ++asked;
        // Later, as an application fetching a token would.
        asio::post(ioc, [provide] { provide({{"token", "bob"}, {"ttl_ms", 60000}}); });
    });
    mesa::client::authenticate_options o;
    o.expires_at = std::chrono::system_clock::now() + 400ms;
    c.authenticate({{"token", "bob"}, {"ttl_ms", 400}}, {}, o);
    run_for(ioc, 700ms);  // past the first expiry
    CHECK(asked == 1);
    CHECK(s.authentications == 2);  // the refresh
    CHECK(r.disconnected.empty());
    CHECK(r.connected.size() == 1);
    CHECK(r.authenticated.size() == 1);  // one op 22
    CHECK(c.authenticated());
    settle(ioc, c);
}

TEST_CASE("client: the expiry of a JWT token is read from its exp") {
    // {"alg":"HS256","typ":"JWT"} . {"id":"a","exp":1700000000} . (unverified)
    auto const exp =
        mesa::detail::jwt_expiry("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpZCI6ImEiLCJleHAiOjE3MDAwMDAwMDB9.sig");
    REQUIRE(exp);
    CHECK(std::chrono::duration_cast<std::chrono::seconds>(exp->time_since_epoch()).count() == 1700000000);
    CHECK_FALSE(mesa::detail::jwt_expiry("eyJhbGciOiJIUzI1NiJ9.eyJpZCI6ImEifQ.sig"));  // no exp
    CHECK_FALSE(mesa::detail::jwt_expiry("not a token"));
    CHECK_FALSE(mesa::detail::jwt_expiry("a.%%%.b"));
}
