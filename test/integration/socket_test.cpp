// Integration tests over real sockets: a mesa server (memory broker) bound to
// a free port on 127.0.0.1, driven together with its test clients on one
// io_context by a single thread. Every case runs on both socket transports
// (websocketpp_plain and asio_plain), except those that check what only
// asio_plain enforces.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <mesa/mesa.hpp>
#include <mesa/transport/asio.hpp>

#include "../support/ws_test_client.hpp"
#include "../support/ws_wire.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

using namespace std::chrono_literals;
using mesa_test::raw_http;
using mesa_test::run_for;
using mesa_test::wait_until;
using mesa_test::ws_client;
using namespace mesa_test::wire;
namespace json = boost::json;

template <class Transport>
using plain_server = mesa::server<Transport, mesa::broker::memory>;
template <class Transport>
using echo_server = mesa::server<Transport, mesa::broker::memory, mesa::heartbeat, mesa::reconnect>;
template <class Transport>
using auth_server = mesa::server<Transport, mesa::broker::memory, mesa::authentication>;
template <class Transport>
using beat_server = mesa::server<Transport, mesa::broker::memory, mesa::heartbeat>;

#define MESA_SOCKET_TRANSPORTS mesa::transport::websocketpp_plain, mesa::transport::asio_plain

/// A server on port 0 plus what it reported. Stops the server and lets the
/// closes finish before anything is destroyed.
template <class Server>
struct harness {
    asio::io_context ioc;
    typename Server::options options;
    std::unique_ptr<Server> server;
    std::vector<std::string> errors;
    std::size_t errors_with_client = 0;
    struct disconnection {
        std::uint16_t code;
        std::string reason;
    };
    std::vector<disconnection> disconnections;

    harness() { options.port = 0; }

    Server& start() {
        server = std::make_unique<Server>(ioc, options);
        server->on_error([this](auto const& e) {
            errors.push_back(e.what);
            if (e.client) ++errors_with_client;
        });
        server->on_disconnection([this](auto const&, std::uint16_t code, std::string const& reason) {
            disconnections.push_back({code, reason});
        });
        server->start();
        REQUIRE(server->port() != 0);
        return *server;
    }
    std::uint16_t port() { return server->port(); }

    ~harness() {
        if (!server) return;
        server->stop();
        wait_until(
            ioc, [&] { return server->clients().empty(); }, 1000ms);
        run_for(ioc, 20ms);
    }
};

/// Answers every PING with a PONG carrying the same data (examples/echo_server.cpp).
template <class Server>
void install_echo(Server& server) {
    server.on_message([](auto const& client, mesa::message const& m) {
        if (m.t && *m.t == "PING") client->send(mesa::message("PONG", m.d));
    });
}

json::object parse_frame(std::string const& text) {
    json::value v = json::parse(text);
    REQUIRE_MESSAGE(v.is_object(), text);
    return v.as_object();
}

/// The frames of `c` with opcode `op` and, when given, type `t`.
std::vector<json::object> frames(ws_client const& c, int op, char const* t = nullptr) {
    std::vector<json::object> out;
    for (auto const& text : c.texts) {
        auto f = parse_frame(text);
        auto const* fop = f.if_contains("op");
        if (!fop || !fop->is_int64() || fop->get_int64() != op) continue;
        if (t) {
            auto const* ft = f.if_contains("t");
            if (!ft || !ft->is_string() || ft->get_string() != t) continue;
        }
        out.push_back(std::move(f));
    }
    return out;
}

std::size_t count(ws_client const& c, int op, char const* t = nullptr) { return frames(c, op, t).size(); }

std::string ping(json::object d) { return mesa::serialize(mesa::message("PING", std::move(d))); }

/// Checks that `c` gets a PONG for a fresh PING (the server still serves it).
void check_echo(asio::io_context& ioc, ws_client& c, std::int64_t n) {
    auto const before = count(c, 0, "PONG");
    c.send_text(ping({{"n", n}}));
    REQUIRE(wait_until(ioc, [&] { return count(c, 0, "PONG") > before; }));
    auto pongs = frames(c, 0, "PONG");
    CHECK(pongs.back()["d"] == json::value(json::object{{"n", n}}));
}

}  // namespace

TEST_CASE_TEMPLATE("socket: the first frame is the hello, with rules even without features", Transport,
                   MESA_SOCKET_TRANSPORTS) {
    harness<plain_server<Transport>> h;
    h.start();
    ws_client c{h.ioc};
    REQUIRE(c.connect_and_wait(h.port()));
    REQUIRE(c.wait_texts(1));
    auto hello = parse_frame(c.texts.front());
    CHECK(hello["op"] == json::value(10));
    REQUIRE(hello["d"].is_object());
    auto const& d = hello["d"].as_object();
    REQUIRE(d.contains("rules"));
    CHECK(d.at("rules").is_array());
    CHECK(d.at("rules").as_array().empty());
    CHECK_FALSE(d.contains("c_heartbeat_interval"));
    CHECK_FALSE(d.contains("c_reconnect_interval"));
    CHECK_FALSE(d.contains("c_authentication_timeout"));
    // Nothing else was sent before or with it.
    run_for(h.ioc, 50ms);
    CHECK(c.texts.size() == 1);
}

TEST_CASE_TEMPLATE("socket: the hello advertises the heartbeat and reconnect intervals", Transport,
                   MESA_SOCKET_TRANSPORTS) {
    harness<echo_server<Transport>> h;
    h.options.template feature<mesa::heartbeat>().interval = 1500ms;
    h.options.template feature<mesa::reconnect>().interval = 2500ms;
    h.start();
    ws_client c{h.ioc};
    REQUIRE(c.connect_and_wait(h.port()));
    REQUIRE(c.wait_texts(1));
    auto hello = parse_frame(c.texts.front());
    CHECK(hello["op"] == json::value(10));
    REQUIRE(hello["d"].is_object());
    auto const& d = hello["d"].as_object();
    CHECK(d.contains("c_heartbeat_interval"));
    CHECK(d.contains("c_reconnect_interval"));
    if (d.contains("c_heartbeat_interval")) CHECK(d.at("c_heartbeat_interval") == json::value(1500));
    if (d.contains("c_reconnect_interval")) CHECK(d.at("c_reconnect_interval") == json::value(2500));
    REQUIRE(d.contains("rules"));
    CHECK(d.at("rules").is_array());
}

TEST_CASE_TEMPLATE("socket: the hello advertises the authentication timeout and the user-object rule", Transport,
                   MESA_SOCKET_TRANSPORTS) {
    harness<auth_server<Transport>> h;
    h.options.template feature<mesa::authentication>().timeout = 3000ms;
    h.start();
    ws_client c{h.ioc};
    REQUIRE(c.connect_and_wait(h.port()));
    REQUIRE(c.wait_texts(1));
    auto hello = parse_frame(c.texts.front());
    REQUIRE(hello["d"].is_object());
    auto const& d = hello["d"].as_object();
    CHECK(d.contains("c_authentication_timeout"));
    if (d.contains("c_authentication_timeout")) CHECK(d.at("c_authentication_timeout") == json::value(3000));
    REQUIRE(d.contains("rules"));
    REQUIRE(d.at("rules").is_array());
    CHECK(d.at("rules").as_array() == json::array{"sends_user_object"});
}

TEST_CASE_TEMPLATE("socket: echo, a PING gets a PONG with the same data", Transport, MESA_SOCKET_TRANSPORTS) {
    harness<echo_server<Transport>> h;
    auto& server = h.start();
    server.on_message([](auto const& client, mesa::message const& m) {
        if (m.t && *m.t == "PING") client->send(mesa::message("PONG", m.d));
    });
    ws_client c{h.ioc};
    REQUIRE(c.connect_and_wait(h.port()));
    REQUIRE(c.wait_texts(1));  // hello

    c.send_text(R"({"op":0,"t":"PING","d":{"n":42,"s":"h\u00e9","nested":{"a":[1,2,3]}}})");
    c.send_text(R"({"op":0,"t":"PING","d":{"n":43}})");
    c.send_text(R"({"op":0,"t":"OTHER","d":{"n":44}})");  // not a PING: no answer
    c.send_text(R"({"op":0,"t":"PING"})");                // no d: answered with d {}
    REQUIRE(c.wait_texts(4));
    run_for(h.ioc, 50ms);
    REQUIRE(c.texts.size() == 4);
    auto first = parse_frame(c.texts[1]);
    CHECK(first ==
          json::object{{"op", 0},
                       {"d", json::object{{"n", 42}, {"s", "h\xc3\xa9"}, {"nested", json::object{{"a", {1, 2, 3}}}}}},
                       {"t", "PONG"}});
    CHECK(parse_frame(c.texts[2]) == json::object{{"op", 0}, {"d", json::object{{"n", 43}}}, {"t", "PONG"}});
    CHECK(parse_frame(c.texts[3]) == json::object{{"op", 0}, {"d", json::object{}}, {"t", "PONG"}});
    CHECK(h.errors.empty());
}

TEST_CASE_TEMPLATE("socket: a frame and a handshake larger than the read buffer arrive whole", Transport,
                   MESA_SOCKET_TRANSPORTS) {
    // The read buffer bounds one read, not what a frame or request may be.
    std::size_t const read_buffer = mesa::transport::detail::websocketpp_config::connection_read_buffer_size;
    harness<plain_server<Transport>> h;
    auto& server = h.start();
    install_echo(server);

    SUBCASE("a frame near max_frame_bytes") {
        ws_client c{h.ioc};
        REQUIRE(c.connect_and_wait(h.port()));
        REQUIRE(c.wait_texts(1));
        std::string const pad(h.options.max_frame_bytes - 64, 'x');
        std::string const frame = ping({{"n", 1}, {"pad", pad}});
        REQUIRE(frame.size() <= h.options.max_frame_bytes);
        REQUIRE(frame.size() > 100 * read_buffer);
        c.send_text(frame);
        REQUIRE(c.wait_texts(2));
        auto pongs = frames(c, 0, "PONG");
        REQUIRE(pongs.size() == 1);
        CHECK(pongs[0]["d"] == json::value(json::object{{"n", 1}, {"pad", pad}}));
        check_echo(h.ioc, c, 2);  // the frames after it are read as usual
    }
    SUBCASE("an upgrade request with a header several reads long") {
        raw_http upgrade{h.ioc};
        upgrade.start(h.port(),
                      "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                      "Cookie: c=" +
                          std::string(4 * read_buffer, 'c') + "\r\n\r\n");
        REQUIRE(wait_until(h.ioc, [&] { return upgrade.body().find("\"op\":10") != std::string::npos; }));
        CHECK(upgrade.status() == 101);
        CHECK(upgrade.headers().find("Server:") == std::string::npos);  // kept by every connection otherwise
        CHECK(server.clients().size() == 1);
    }
    CHECK(h.errors.empty());
}

TEST_CASE_TEMPLATE("socket: options.path restricts the upgrade to that path", Transport, MESA_SOCKET_TRANSPORTS) {
    SUBCASE("path set to /ws") {
        harness<plain_server<Transport>> h;
        h.options.path = "/ws";
        h.start();
        ws_client exact{h.ioc}, query{h.ioc}, other{h.ioc}, prefix{h.ioc};
        CHECK(exact.connect_and_wait(h.port(), "/ws"));
        CHECK(query.connect_and_wait(h.port(), "/ws?x=1"));
        CHECK(exact.wait_texts(1));
        CHECK(query.wait_texts(1));

        other.connect(h.port(), "/other");
        REQUIRE(other.wait_failed());
        CHECK_FALSE(other.opened);
        CHECK(other.http_status == 404);

        prefix.connect(h.port(), "/wsx");
        REQUIRE(prefix.wait_failed());
        CHECK(prefix.http_status == 404);

        CHECK(h.server->clients().size() == 2);
    }
    SUBCASE("path unset: every path upgrades") {
        harness<plain_server<Transport>> h;
        h.start();
        ws_client root{h.ioc}, deep{h.ioc}, query{h.ioc};
        CHECK(root.connect_and_wait(h.port(), "/"));
        CHECK(deep.connect_and_wait(h.port(), "/some/deep/path"));
        CHECK(query.connect_and_wait(h.port(), "/other?x=1"));
        CHECK(root.wait_texts(1));
        CHECK(deep.wait_texts(1));
        CHECK(query.wait_texts(1));
        CHECK(h.server->clients().size() == 3);
    }
}

TEST_CASE_TEMPLATE("socket: plain HTTP requests", Transport, MESA_SOCKET_TRANSPORTS) {
    std::string const request =
        "GET /health?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Probe: yes\r\nConnection: close\r\n\r\n";

    SUBCASE("answered by the on_http handler") {
        harness<plain_server<Transport>> h;
        auto& server = h.start();
        mesa::http_request seen;
        server.on_http([&](mesa::http_request const& req, mesa::http_responder respond) {
            seen = req;
            respond({203,
                     {{"Content-Type", "text/plain"}, {"X-Mesa-Test", "1"}},
                     "healthy " + req.method + " " + req.target});
        });
        raw_http http{h.ioc};
        http.start(h.port(), request);
        REQUIRE(wait_until(h.ioc, [&] { return http.done; }));
        INFO(http.response);
        CHECK(http.status() == 203);
        CHECK(http.body() == "healthy GET /health?x=1");
        CHECK(http.headers().find("X-Mesa-Test: 1") != std::string::npos);
        CHECK(seen.method == "GET");
        CHECK(seen.target == "/health?x=1");
        CHECK(seen.header("x-probe") == std::optional<std::string>("yes"));
        CHECK(server.clients().empty());
    }
    SUBCASE("answered later, after the handler returned") {
        harness<plain_server<Transport>> h;
        auto& server = h.start();
        asio::steady_timer later{h.ioc};
        server.on_http([&](mesa::http_request const&, mesa::http_responder respond) {
            later.expires_after(std::chrono::milliseconds(50));
            later.async_wait([respond](std::error_code) { respond({202, {}, "accepted later"}); });
        });
        raw_http http{h.ioc};
        http.start(h.port(), request);
        REQUIRE(wait_until(h.ioc, [&] { return http.done; }));
        INFO(http.response);
        CHECK(http.status() == 202);
        CHECK(http.body() == "accepted later");
    }
    SUBCASE("HEAD: the response's headers and Content-Length, without its body") {
        harness<plain_server<Transport>> h;
        auto& server = h.start();
        server.on_http([&](mesa::http_request const&, mesa::http_responder respond) {
            respond({200, {{"Content-Type", "application/json"}}, "{\"status\":\"ok\"}"});
        });
        raw_http http{h.ioc};
        http.start(h.port(), "HEAD /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        REQUIRE(wait_until(h.ioc, [&] { return http.done; }));
        INFO(http.response);
        CHECK(http.status() == 200);
        CHECK(http.headers().find("\r\nContent-Length: 15") != std::string::npos);
        CHECK(http.body().empty());
    }
    SUBCASE("on_http_header refuses before on_http") {
        harness<plain_server<Transport>> h;
        auto& server = h.start();
        bool handled = false;
        server.on_http_header([](mesa::http_request const& header) -> std::optional<mesa::http_response> {
            if (header.target == "/private") return mesa::http_response{401, {}, "no\n"};
            return std::nullopt;
        });
        server.on_http([&](mesa::http_request const&, mesa::http_responder respond) {
            handled = true;
            respond({200, {}, "ok"});
        });
        raw_http http{h.ioc};
        http.start(h.port(), "POST /private HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}");
        REQUIRE(wait_until(h.ioc, [&] { return http.done; }));
        INFO(http.response);
        CHECK(http.status() == 401);
        CHECK(http.headers().find("\r\nConnection: close") != std::string::npos);
        CHECK_FALSE(handled);
    }
    SUBCASE("426 without a handler") {
        harness<plain_server<Transport>> h;
        h.start();
        raw_http http{h.ioc};
        http.start(h.port(), request);
        REQUIRE(wait_until(h.ioc, [&] { return http.done; }));
        INFO(http.response);
        CHECK(http.status() == 426);
    }
}

TEST_CASE_TEMPLATE("socket: bad input closes only the offending client, with the matching code", Transport,
                   MESA_SOCKET_TRANSPORTS) {
    harness<plain_server<Transport>> h;
    h.options.max_frame_bytes = 1024;
    auto& server = h.start();
    install_echo(server);

    std::string big = ping({{"pad", std::string(4096, 'x')}});
    REQUIRE(big.size() > 4096);

    struct bad_input {
        char const* name;
        std::string payload;
        bool binary;
        std::uint16_t code;
        bool reports_error;
    };
    std::vector<bad_input> const cases = {
        {"not JSON", "this is not json", false, mesa::close_code::invalid_payload, true},
        {"truncated JSON", R"({"op":0,"d":{)", false, mesa::close_code::invalid_payload, true},
        {"JSON array", R"([{"op":0,"d":{}}])", false, mesa::close_code::invalid_payload, true},
        {"op not an integer", R"({"op":"x"})", false, mesa::close_code::invalid_payload, true},
        {"d not an object", R"({"op":0,"d":5})", false, mesa::close_code::invalid_payload, true},
        {"binary frame", R"({"op":0,"t":"PING","d":{}})", true, mesa::close_code::unsupported_data, true},
        {"frame over max_frame_bytes", big, false, mesa::close_code::message_too_big, false},
    };

    ws_client good{h.ioc};
    REQUIRE(good.connect_and_wait(h.port()));
    REQUIRE(good.wait_texts(1));
    std::int64_t n = 0;
    check_echo(h.ioc, good, ++n);

    for (auto const& input : cases) {
        INFO("input: " << std::string(input.name));
        auto const errors_before = h.errors_with_client;
        auto const disconnections_before = h.disconnections.size();
        ws_client bad{h.ioc};
        REQUIRE(bad.connect_and_wait(h.port()));
        REQUIRE(bad.wait_texts(1));
        if (input.binary)
            bad.send_binary(input.payload);
        else
            bad.send_text(input.payload);
        CHECK(bad.wait_closed());  // not fatal: the other inputs still run
        CHECK(bad.close_code == input.code);
        CHECK(bad.texts.size() == 1);  // nothing but the hello, no PONG
        if (input.reports_error) CHECK(h.errors_with_client > errors_before);
        if (bad.closed) {
            CHECK(wait_until(h.ioc, [&] { return h.disconnections.size() > disconnections_before; }));
            if (h.disconnections.size() > disconnections_before) CHECK(h.disconnections.back().code == input.code);
        }

        // The other client, connected all along, is still served.
        CHECK(good.is_open());
        check_echo(h.ioc, good, ++n);
    }
    CHECK(server.clients().size() == 1);
}

TEST_CASE_TEMPLATE("socket: server.send reaches every connected client", Transport, MESA_SOCKET_TRANSPORTS) {
    harness<plain_server<Transport>> h;
    auto& server = h.start();
    ws_client a{h.ioc}, b{h.ioc}, c{h.ioc};
    for (auto* cl : {&a, &b, &c}) {
        REQUIRE(cl->connect_and_wait(h.port()));
        REQUIRE(cl->wait_texts(1));
    }
    server.send(mesa::message("NEWS", {{"n", 1}}));
    for (auto* cl : {&a, &b, &c}) {
        REQUIRE(cl->wait_texts(2));
        CHECK(parse_frame(cl->texts[1]) == json::object{{"op", 0}, {"d", json::object{{"n", 1}}}, {"t", "NEWS"}});
    }
    // A client that left does not stop the others from receiving.
    b.close(1000);
    REQUIRE(b.wait_closed());
    REQUIRE(wait_until(h.ioc, [&] { return server.clients().size() == 2; }));
    server.send(mesa::message("NEWS", {{"n", 2}}));
    REQUIRE(a.wait_texts(3));
    REQUIRE(c.wait_texts(3));
    CHECK(b.texts.size() == 2);
}

TEST_CASE_TEMPLATE("socket: authentication, op 22 and sends by id", Transport, MESA_SOCKET_TRANSPORTS) {
    harness<auth_server<Transport>> h;
    auto& server = h.start();
    int attempts = 0;
    server.template feature<mesa::authentication>().on_authenticate(
        [&](auto const&, mesa::json::object const& credentials, mesa::authentication::done done) {
            ++attempts;
            auto const* id = credentials.if_contains("id");
            if (!id || !id->is_string()) return done.fail("no id");
            std::string name(id->get_string());
            done.succeed(name, json::object{{"name", name}});
        });

    ws_client a{h.ioc}, b{h.ioc}, anon{h.ioc};
    for (auto* cl : {&a, &b, &anon}) REQUIRE(cl->connect_and_wait(h.port()));
    // op 2 right after the socket opens, before reading the hello.
    a.send_text(R"({"op":2,"d":{"id":"a"}})");
    b.send_text(R"({"op":2,"d":{"id":"b"}})");
    REQUIRE(wait_until(h.ioc, [&] { return count(a, 22) == 1 && count(b, 22) == 1; }));
    CHECK(frames(a, 22).front()["d"] == json::value(json::object{{"name", "a"}}));
    CHECK(frames(b, 22).front()["d"] == json::value(json::object{{"name", "b"}}));
    CHECK(parse_frame(a.texts.front())["op"] == json::value(10));  // the hello still came first

    // Authenticating again does not send a second op 22.
    a.send_text(R"({"op":2,"d":{"id":"a"}})");
    REQUIRE(wait_until(h.ioc, [&] { return attempts == 3; }));

    server.send(mesa::message("FOR_A", {}), {"a"});
    server.send(mesa::message("NOT_B", {}), {"*"}, {"b"});
    server.send(mesa::message("ONLY_B", {}), {"a", "b"}, {"a"});
    server.send(mesa::message("NOBODY", {}), {"nobody"});
    server.send(mesa::message("END", {}));  // a frame everyone gets, after the others
    for (auto* cl : {&a, &b, &anon}) REQUIRE(wait_until(h.ioc, [&] { return count(*cl, 0, "END") == 1; }));

    auto types = [](ws_client const& c) {
        std::vector<std::string> out;
        for (auto const& f : frames(c, 0)) out.emplace_back(f.at("t").as_string());
        return out;
    };
    CHECK(types(a) == std::vector<std::string>{"FOR_A", "NOT_B", "END"});
    CHECK(types(b) == std::vector<std::string>{"ONLY_B", "END"});
    CHECK(types(anon) == std::vector<std::string>{"NOT_B", "END"});
    CHECK(count(a, 22) == 1);
    CHECK(count(anon, 22) == 0);
}

TEST_CASE_TEMPLATE("socket: heartbeats", Transport, MESA_SOCKET_TRANSPORTS) {
    harness<beat_server<Transport>> h;
    h.options.template feature<mesa::heartbeat>().interval = 100ms;
    h.options.template feature<mesa::heartbeat>().max_attempts = 2;
    h.start();

    ws_client silent{h.ioc}, lively{h.ioc};
    lively.on_text = [&lively](std::string const& text) {
        auto f = json::parse(text);
        if (f.is_object() && f.as_object().contains("op") && f.as_object().at("op") == json::value(1))
            lively.send_text(R"({"op":11,"d":{}})");
    };
    REQUIRE(silent.connect_and_wait(h.port()));
    REQUIRE(lively.connect_and_wait(h.port()));

    SUBCASE("a client that never answers is closed with 4000 after max_attempts") {
        REQUIRE(silent.wait_closed(3000ms));
        CHECK(silent.close_code == mesa::close_code::heartbeat_timeout);
        auto beats = frames(silent, 1);
        REQUIRE(beats.size() == 3);
        CHECK(beats[0]["d"] == json::value(json::object{}));
        CHECK(beats[1]["d"] == json::value(json::object{{"tries", 1}, {"max", 2}}));
        CHECK(beats[2]["d"] == json::value(json::object{{"tries", 2}, {"max", 2}}));
        CHECK(silent.texts.size() == 4);  // hello + 3 beats, nothing else
        REQUIRE(wait_until(h.ioc, [&] { return !h.disconnections.empty(); }));
        CHECK(h.disconnections.front().code == mesa::close_code::heartbeat_timeout);
    }
    SUBCASE("a client that answers every op 1 stays open") {
        // Six beats, and the silent client closed meanwhile: the lively one outlived it.
        REQUIRE(wait_until(
            h.ioc, [&] { return frames(lively, 1).size() >= 6 && silent.closed; }, 10000ms));
        CHECK(lively.is_open());
        for (auto& b : frames(lively, 1)) CHECK(b["d"] == json::value(json::object{}));
    }
}

TEST_CASE_TEMPLATE("socket: authentication timeout", Transport, MESA_SOCKET_TRANSPORTS) {
    harness<auth_server<Transport>> h;
    h.options.template feature<mesa::authentication>().timeout = 200ms;
    auto& server = h.start();
    server.template feature<mesa::authentication>().on_authenticate(
        [](auto const&, mesa::json::object const& credentials, mesa::authentication::done done) {
            done.succeed(std::string(credentials.at("id").as_string()));
        });

    ws_client authed{h.ioc}, anon{h.ioc};
    REQUIRE(authed.connect_and_wait(h.port()));
    authed.send_text(R"({"op":2,"d":{"id":"a"}})");
    REQUIRE(anon.connect_and_wait(h.port()));
    REQUIRE(wait_until(h.ioc, [&] { return count(authed, 22) == 1; }));

    REQUIRE(anon.wait_closed(2000ms));
    CHECK(anon.close_code == mesa::close_code::authentication_timeout);
    CHECK(anon.closed_at - anon.started_at >= 195ms);

    // Connected before the anonymous client, the authenticated one is past its
    // own deadline by now, and still there.
    REQUIRE(wait_until(h.ioc, [&] { return server.clients().size() == 1; }));
    CHECK(authed.is_open());
}

TEST_CASE_TEMPLATE("socket: server.stop closes every client with 1001", Transport, MESA_SOCKET_TRANSPORTS) {
    harness<plain_server<Transport>> h;
    auto& server = h.start();
    auto const port = h.port();
    ws_client a{h.ioc}, b{h.ioc};
    REQUIRE(a.connect_and_wait(port));
    REQUIRE(b.connect_and_wait(port));
    REQUIRE(wait_until(h.ioc, [&] { return server.clients().size() == 2; }));

    server.stop();
    REQUIRE(a.wait_closed());
    REQUIRE(b.wait_closed());
    CHECK(a.close_code == mesa::close_code::going_away);
    CHECK(b.close_code == mesa::close_code::going_away);
    REQUIRE(wait_until(h.ioc, [&] { return h.disconnections.size() == 2; }));
    CHECK(h.disconnections[0].code == 1001);
    CHECK(h.disconnections[1].code == 1001);
    CHECK(server.clients().empty());

    // No longer accepting.
    ws_client late{h.ioc};
    late.connect(port);
    CHECK(late.wait_failed());
}

TEST_CASE_TEMPLATE("socket: the disconnection event gets the code the client closed with", Transport,
                   MESA_SOCKET_TRANSPORTS) {
    harness<plain_server<Transport>> h;
    auto& server = h.start();
    ws_client c{h.ioc};
    REQUIRE(c.connect_and_wait(h.port()));
    REQUIRE(wait_until(h.ioc, [&] { return server.clients().size() == 1; }));
    c.close(4321, "bye");
    REQUIRE(wait_until(h.ioc, [&] { return h.disconnections.size() == 1; }));
    CHECK(h.disconnections[0].code == 4321);
    CHECK(h.disconnections[0].reason == "bye");
    CHECK(server.clients().empty());
    REQUIRE(c.wait_closed());
    CHECK(c.close_code == 4321);  // the server echoed it
}

// ---- the WebSocket protocol over raw sockets ---------------------------------

namespace {

/// Upgrades with `frames` sent right behind the request, reads until the
/// server ends the connection, and returns what it sent.
template <class Harness>
raw_http& exchange(Harness& h, raw_http& peer, std::string const& frames, std::string const& path = "/") {
    peer.start(h.port(), "GET " + path + " HTTP/1.1\r\n" + upgrade_headers + "\r\n" + frames);
    CHECK(wait_until(
        h.ioc, [&] { return peer.done; }, 10000ms));
    return peer;
}

}  // namespace

TEST_CASE_TEMPLATE("socket: RFC 6455 frames, each case on a fresh connection", Transport, MESA_SOCKET_TRANSPORTS) {
    harness<plain_server<Transport>> h;
    h.options.max_frame_bytes = 1024;
    auto& server = h.start();
    install_echo(server);
    std::string const ping_text = R"({"op":0,"t":"PING","d":{"n":1}})";

    SUBCASE("frames pipelined right after the upgrade request are read; a fragmented message with a ping inside") {
        raw_http peer{h.ioc};
        exchange(h, peer,
                 client_frame(0x01, ping_text.substr(0, 10)) + client_frame(0x89, "are you there") +
                     client_frame(0x00, ping_text.substr(10, 5)) + client_frame(0x80, ping_text.substr(15)) +
                     client_frame(0x88, close_payload(1000)));
        CHECK(peer.status() == 101);
        auto frames = server_frames(peer.response);
        std::vector<int> opcodes;
        for (auto const& f : frames) opcodes.push_back(f.opcode);
        REQUIRE(opcodes == std::vector<int>{1, 10, 1, 8});  // hello, pong, PONG, close
        CHECK(frames[1].payload == "are you there");
        CHECK(parse_frame(frames[2].payload)["t"] == json::value("PONG"));
        CHECK(frames[3].close_code() == 1000);
        REQUIRE(wait_until(h.ioc, [&] { return h.disconnections.size() == 1; }));
        CHECK(h.disconnections[0].code == 1000);
    }
    SUBCASE("a 125-byte ping is answered with the same payload") {
        raw_http peer{h.ioc};
        exchange(h, peer, client_frame(0x89, std::string(125, 'p')) + client_frame(0x88, close_payload(1000)));
        auto frames = server_frames(peer.response);
        REQUIRE(frames.size() == 3);
        CHECK(frames[1].opcode == 10);
        CHECK(frames[1].payload == std::string(125, 'p'));
    }

    auto const cases = frame_refusals();
    constexpr bool is_asio = std::is_same_v<Transport, mesa::transport::asio_plain>;
    for (auto const& c : cases) {
        if (c.asio_only && !is_asio) continue;
        SUBCASE(c.name) {
            raw_http peer{h.ioc};
            exchange(h, peer, c.frames);
            CHECK(peer.status() == 101);
            auto frames = server_frames(peer.response);
            REQUIRE(frames.size() >= 2);
            CHECK(frames.front().opcode == 1);  // the hello
            CHECK(frames.back().opcode == 8);
            CHECK(frames.back().close_code() == c.code);
            REQUIRE(wait_until(h.ioc, [&] { return h.disconnections.size() == 1; }));
            CHECK(h.disconnections[0].code == c.code);
            CHECK_FALSE(h.errors.empty());
        }
    }
}

namespace {

/// The keepalive settings of this process's accepted socket on `port` (the
/// server's end of a connection): {SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT}.
std::vector<int> server_socket_keepalive(std::uint16_t port) {
    for (int fd = 3; fd < 4096; ++fd) {
        sockaddr_storage local{}, peer{};
        socklen_t len = sizeof local, peer_len = sizeof peer;
        if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) continue;
        if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) continue;  // the listener
        std::uint16_t local_port = 0;
        if (local.ss_family == AF_INET)
            local_port = ntohs(reinterpret_cast<sockaddr_in*>(&local)->sin_port);
        else if (local.ss_family == AF_INET6)
            local_port = ntohs(reinterpret_cast<sockaddr_in6*>(&local)->sin6_port);
        if (local_port != port) continue;
        std::vector<int> out;
        for (auto [level, name] :
             {std::pair{SOL_SOCKET, SO_KEEPALIVE}, std::pair{int(IPPROTO_TCP), TCP_KEEPIDLE},
              std::pair{int(IPPROTO_TCP), TCP_KEEPINTVL}, std::pair{int(IPPROTO_TCP), TCP_KEEPCNT}}) {
            int value = -1;
            socklen_t size = sizeof value;
            ::getsockopt(fd, level, name, &value, &size);
            out.push_back(value);
        }
        return out;
    }
    return {};
}

}  // namespace

TEST_CASE_TEMPLATE("socket: tcp_keepalive reaches every accepted socket; off by default", Transport,
                   MESA_SOCKET_TRANSPORTS) {
    // A client whose host vanished is found by the kernel's probes only if
    // the server's end of the connection has them.
    for (bool on : {false, true}) {
        INFO("tcp_keepalive " << (on ? "on" : "off"));
        harness<plain_server<Transport>> h;
        if (on) h.options.tcp_keepalive = {std::chrono::seconds(37), std::chrono::seconds(7), 3};
        h.start();
        ws_client c{h.ioc};
        REQUIRE(c.connect_and_wait(h.port()));
        REQUIRE(c.wait_texts(1));
        auto const k = server_socket_keepalive(h.port());
        REQUIRE(k.size() == 4);
        if (on)
            CHECK(k == std::vector<int>{1, 37, 7, 3});
        else
            CHECK(k[0] == 0);
    }
}

TEST_CASE_TEMPLATE("socket: pings and pongs count against the rate limit; a fragmented message counts once", Transport,
                   MESA_SOCKET_TRANSPORTS) {
    // Before: control frames reached no feature, so a ping flood (answered
    // with pongs on the server's thread) was never limited.
    using server_type = mesa::server<Transport, mesa::broker::memory, mesa::rate_limit>;
    harness<server_type> h;
    h.options.template feature<mesa::rate_limit>().burst = 20;
    h.options.template feature<mesa::rate_limit>().messages_per_second = 1;
    h.start();
    for (std::uint8_t opcode : {0x89, 0x8A}) {
        INFO("opcode " << int(opcode));
        std::string flood;
        for (int i = 0; i < 100; ++i) flood += client_frame(opcode, "p" + std::to_string(i));
        auto const before = h.disconnections.size();
        raw_http peer{h.ioc};
        exchange(h, peer, flood);
        auto frames = server_frames(peer.response);
        REQUIRE_FALSE(frames.empty());
        CHECK(frames.back().opcode == 8);
        CHECK(frames.back().close_code() == mesa::close_code::rate_limited);
        std::size_t pongs = 0;
        for (auto const& f : frames) pongs += f.opcode == 10;
        CHECK(pongs <= 20);  // none after the limit closed it
        REQUIRE(wait_until(h.ioc, [&] { return h.disconnections.size() == before + 1; }));
        // websocketpp reports 1006 when the peer never answers the close frame.
        if (std::is_same_v<Transport, mesa::transport::asio_plain>)
            CHECK(h.disconnections.back().code == mesa::close_code::rate_limited);
    }
    CHECK(h.errors.size() == 2);

    // A message streamed in 150 fragments counts once: not limited.
    std::string const message = R"({"op":0,"t":"CHAT","d":{"text":")" + std::string(150, 'x') + "\"}}";
    std::string fragments = client_frame(0x01, message.substr(0, 1));
    for (std::size_t i = 1; i + 1 < message.size(); ++i) fragments += client_frame(0x00, message.substr(i, 1));
    fragments += client_frame(0x80, message.substr(message.size() - 1)) + client_frame(0x88, close_payload(1000));
    auto const before = h.disconnections.size();
    raw_http peer{h.ioc};
    exchange(h, peer, fragments);
    auto frames = server_frames(peer.response);
    REQUIRE_FALSE(frames.empty());
    CHECK(frames.back().close_code() == 1000);
    REQUIRE(wait_until(h.ioc, [&] { return h.disconnections.size() == before + 1; }));
    CHECK(h.disconnections.back().code == 1000);
}

TEST_CASE_TEMPLATE("socket: an upgrade whose Sec-WebSocket-Key is not the base64 of 16 bytes gets 400", Transport,
                   MESA_SOCKET_TRANSPORTS) {
    harness<plain_server<Transport>> h;
    h.start();
    std::string const key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    auto const headers = upgrade_headers.substr(0, upgrade_headers.find(key)) +
                         upgrade_headers.substr(upgrade_headers.find(key) + key.size());
    for (std::string const bad : {"abc", "AAAAAAAAAAAAAAAAAAAA", "dGhlIHNhbXBsZSBub25jZR=="}) {
        INFO(bad);
        raw_http peer{h.ioc};
        peer.start(h.port(), "GET / HTTP/1.1\r\n" + headers + "Sec-WebSocket-Key: " + bad + "\r\n\r\n");
        REQUIRE(wait_until(
            h.ioc, [&] { return peer.done; }, 5000ms));
        CHECK(peer.status() == 400);
        CHECK(peer.headers().find("\r\nConnection: close") != std::string::npos);  // the connection ends
    }
    CHECK(h.server->clients().empty());
    CHECK(h.errors.size() == 3);
}

// ---- what only asio_plain enforces -------------------------------------------

namespace {
using asio_server = plain_server<mesa::transport::asio_plain>;

/// Sends `request` as is and returns the answer once the server closed.
template <class Harness>
std::string ask(Harness& h, std::string const& request) {
    raw_http peer{h.ioc};
    peer.start(h.port(), request);
    CHECK(wait_until(
        h.ioc, [&] { return peer.done; }, 5000ms));
    return peer.response;
}

int status_of(std::string const& response) {
    return response.rfind("HTTP/1.1 ", 0) == 0 ? std::atoi(response.c_str() + 9) : 0;
}

std::string without(std::string headers, std::string const& line) {
    auto at = headers.find(line);
    REQUIRE(at != std::string::npos);
    return headers.erase(at, line.size());
}
}  // namespace

TEST_CASE("socket: asio_plain refuses a malformed upgrade with 400 or 426, never 5xx or 101") {
    harness<asio_server> h;
    h.options.path = "/ws";
    h.start();
    std::string const version = "Sec-WebSocket-Version: 13\r\n";
    std::string const key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

    auto const no_version = ask(h, "GET /ws HTTP/1.1\r\n" + without(upgrade_headers, version) + "\r\n");
    CHECK(status_of(no_version) == 426);
    CHECK(no_version.find("\r\nSec-WebSocket-Version: 13\r\n") != std::string::npos);
    CHECK(status_of(ask(h, "GET /ws HTTP/1.1\r\n" + without(upgrade_headers, version) +
                               "Sec-WebSocket-Version: 8\r\n\r\n")) == 426);
    CHECK(status_of(ask(
              h, "GET /ws HTTP/1.1\r\n" + without(upgrade_headers, key) + "Sec-WebSocket-Key: abc\r\n\r\n")) == 400);
    CHECK(status_of(ask(h, "GET /ws HTTP/1.1\r\n" + without(upgrade_headers, "Connection: Upgrade\r\n") +
                               "Connection: keep-alive\r\n\r\n")) == 400);
    CHECK(status_of(ask(h, "POST /ws HTTP/1.1\r\n" + upgrade_headers + "\r\n")) == 400);
    CHECK(status_of(ask(h, "GET /ws HTTP/1.0\r\n" + upgrade_headers + "\r\n")) == 400);
    CHECK(status_of(ask(
              h, "GET /ws HTTP/1.1\r\n" + upgrade_headers + "X-Big: " + std::string(10000, 'b') + "\r\n\r\n")) == 431);
    // The path is checked first.
    CHECK(status_of(ask(h, "GET /other HTTP/1.1\r\n" + without(upgrade_headers, version) + "\r\n")) == 404);
    // Every refusal raised the error event.
    CHECK(h.errors.size() == 8);
    CHECK(h.server->clients().empty());
}

TEST_CASE("socket: asio_plain refuses a foreign Origin with 403 before a full server's 503") {
    harness<asio_server> h;
    h.options.max_connections = 1;
    h.options.allowed_origins = {"https://good.example"};
    h.start();
    ws_client first{h.ioc};
    REQUIRE(first.connect_and_wait(h.port()));
    REQUIRE(wait_until(h.ioc, [&] { return h.server->clients().size() == 1; }));
    CHECK(status_of(ask(h, "GET / HTTP/1.1\r\n" + upgrade_headers + "Origin: https://evil.example\r\n\r\n")) == 403);
    CHECK(status_of(ask(h, "GET / HTTP/1.1\r\n" + upgrade_headers + "Origin: https://good.example\r\n\r\n")) == 503);
}

TEST_CASE("socket: asio_plain reports the code the server closed with when the peer never answers") {
    harness<beat_server<mesa::transport::asio_plain>> h;
    h.options.feature<mesa::heartbeat>().interval = 100ms;
    h.options.feature<mesa::heartbeat>().max_attempts = 1;
    h.options.transport.close_timeout = 300ms;
    h.start();
    // Upgrades, then reads everything and answers nothing, not even the close frame.
    raw_http silent{h.ioc};
    silent.start(h.port(), "GET / HTTP/1.1\r\n" + upgrade_headers + "\r\n");
    REQUIRE(wait_until(
        h.ioc, [&] { return !h.disconnections.empty(); }, 5000ms));
    CHECK(h.disconnections[0].code == mesa::close_code::heartbeat_timeout);
    REQUIRE(wait_until(h.ioc, [&] { return silent.done; }));
    auto frames = server_frames(silent.response);
    REQUIRE_FALSE(frames.empty());
    CHECK(frames.back().opcode == 8);
    CHECK(frames.back().close_code() == mesa::close_code::heartbeat_timeout);
}

TEST_CASE("socket: asio_plain closes a connection that sends no whole request within handshake_timeout") {
    harness<asio_server> h;
    h.options.transport.handshake_timeout = 200ms;
    h.start();
    raw_http mute{h.ioc}, slow{h.ioc};
    mute.start(h.port(), "");
    slow.start(h.port(), "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n");  // never ends its header
    // Without the timeout both would stay open past the deadline.
    REQUIRE(wait_until(
        h.ioc, [&] { return mute.done && slow.done; }, 3000ms));
    CHECK(mute.response.empty());  // it sent nothing: closed without an answer
    // It began a request: 408 (RFC 9110 §15.5.9), reported as an HTTP refusal.
    CHECK(status_of(slow.response) == 408);
    CHECK(slow.response.find("\r\nConnection: close\r\n") != std::string::npos);
    REQUIRE(h.errors.size() == 1);
    CHECK(h.errors[0].find("refused with 408") != std::string::npos);
    CHECK(h.errors[0].find("upgrade") == std::string::npos);
    CHECK(h.server->clients().empty());
}

TEST_CASE("socket: asio_plain serves HTTP/1.1 bodies: chunked, 100-continue, 413 before the body") {
    harness<asio_server> h;
    auto& server = h.start();
    std::vector<std::string> bodies;
    server.on_http([&](mesa::http_request const& req, mesa::http_responder respond) {
        bodies.push_back(req.body);
        respond({202, {{"Content-Type", "application/json"}}, R"({"ok":true})"});
    });
    SUBCASE("a chunked body") {
        auto response =
            ask(h,
                "POST /dispatch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                "5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n");
        CHECK(status_of(response) == 202);
        CHECK(response.find("\r\nConnection: close\r\n") != std::string::npos);
        CHECK(response.find("\r\nContent-Length: 11\r\n") != std::string::npos);
        REQUIRE(bodies.size() == 1);
        CHECK(bodies[0] == R"({"a":1})");
    }
    SUBCASE("Expect: 100-continue") {
        auto response =
            ask(h,
                "POST /dispatch HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\nConnection: "
                "close\r\n\r\n{}");
        CHECK(response.rfind("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 ", 0) == 0);
        CHECK(bodies == std::vector<std::string>{"{}"});
    }
    SUBCASE("a body announced over the limit is refused without being read") {
        auto response = ask(h, "POST /dispatch HTTP/1.1\r\nHost: x\r\nContent-Length: 30000000\r\n\r\n{");
        CHECK(status_of(response) == 413);
        CHECK(bodies.empty());
    }
}

namespace {
/// The status lines of the responses in `bytes`, in order.
std::vector<int> statuses(std::string const& bytes) {
    std::vector<int> out;
    for (auto at = bytes.find("HTTP/1.1 "); at != std::string::npos; at = bytes.find("HTTP/1.1 ", at + 1))
        out.push_back(std::atoi(bytes.c_str() + at + 9));
    return out;
}
}  // namespace

TEST_CASE("socket: asio_plain keeps HTTP/1.1 connections open and answers pipelined requests in order") {
    harness<asio_server> h;
    h.options.transport.request_limits.idle_timeout = 300ms;
    auto& server = h.start();
    std::vector<std::string> seen;
    asio::steady_timer later{h.ioc};
    server.on_http([&](mesa::http_request const& req, mesa::http_responder respond) {
        seen.push_back(req.method + " " + req.target);
        if (req.target == "/slow") {  // answered after the next request is already there
            later.expires_after(100ms);
            later.async_wait([&seen, respond](std::error_code) {
                // The next request is already sent, and waits: one request at a time.
                CHECK(seen.size() == 1);
                respond({200, {}, "slow"});
            });
            return;
        }
        respond({200, {}, req.target});
    });
    SUBCASE("two requests in one write: both answered on the socket, in order; Connection: close ends it") {
        raw_http peer{h.ioc};
        peer.start(h.port(),
                   "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
                   "POST /fast HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
        REQUIRE(wait_until(h.ioc, [&] { return peer.done; }));
        INFO(peer.response);
        CHECK(statuses(peer.response) == std::vector<int>{200, 200});
        auto const first = peer.response.find("\r\n\r\nslow");
        auto const second = peer.response.find("\r\n\r\n/fast");
        REQUIRE(first != std::string::npos);
        REQUIRE(second != std::string::npos);
        CHECK(first < second);
        // The first response leaves the connection open, the second closes it.
        auto const first_headers = peer.response.substr(0, first);
        CHECK(first_headers.find("Connection: close") == std::string::npos);
        CHECK(first_headers.find("Keep-Alive: timeout=") != std::string::npos);
        CHECK(peer.response.substr(first).find("\r\nConnection: close\r\n") != std::string::npos);
        CHECK(seen == std::vector<std::string>{"GET /slow", "POST /fast"});
    }
    SUBCASE("an idle persistent connection is closed after idle_timeout") {
        raw_http peer{h.ioc};
        peer.start(h.port(), "GET /one HTTP/1.1\r\nHost: x\r\n\r\n");
        REQUIRE(wait_until(h.ioc, [&] { return peer.response.find("/one") != std::string::npos; }));
        CHECK_FALSE(peer.done);  // still open after its response
        REQUIRE(wait_until(
            h.ioc, [&] { return peer.done; }, 3000ms));
        CHECK(statuses(peer.response) == std::vector<int>{200});
        CHECK(h.errors.empty());  // an idle close is no refusal
    }
    SUBCASE("HTTP/1.0 without keep-alive: one request, then the end") {
        raw_http peer{h.ioc};
        peer.start(h.port(), "GET /a HTTP/1.0\r\n\r\nGET /b HTTP/1.0\r\n\r\n");
        REQUIRE(wait_until(h.ioc, [&] { return peer.done; }));
        INFO(peer.response);
        CHECK(statuses(peer.response) == std::vector<int>{200});
        CHECK(peer.response.find("\r\nConnection: close\r\n") != std::string::npos);
        CHECK(seen == std::vector<std::string>{"GET /a"});
    }
    SUBCASE("HTTP/1.0 with Connection: keep-alive persists, and the response says so") {
        raw_http peer{h.ioc};
        peer.start(h.port(), "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n\r\n");
        REQUIRE(wait_until(h.ioc, [&] { return peer.done; }));
        INFO(peer.response);
        CHECK(statuses(peer.response) == std::vector<int>{200, 200});
        CHECK(peer.response.find("\r\nConnection: keep-alive\r\n") != std::string::npos);
        CHECK(seen == std::vector<std::string>{"GET /a", "GET /b"});
    }
    SUBCASE("HTTP/1.0 with Transfer-Encoding has faulty framing: 400, closed, the next request unserved") {
        raw_http peer{h.ioc};
        peer.start(
            h.port(),
            "POST /a HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
            "GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
        REQUIRE(wait_until(h.ioc, [&] { return peer.done; }));
        INFO(peer.response);
        CHECK(statuses(peer.response) == std::vector<int>{400});
        CHECK(peer.response.find("\r\nConnection: close\r\n") != std::string::npos);
        CHECK(seen.empty());
    }
    SUBCASE("empty lines between pipelined requests are skipped; a request without Host gets 400") {
        raw_http peer{h.ioc};
        peer.start(h.port(),
                   "\r\nPOST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}\r\n"
                   "GET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\n\r\n");
        REQUIRE(wait_until(h.ioc, [&] { return peer.done; }));
        INFO(peer.response);
        CHECK(statuses(peer.response) == std::vector<int>{200, 200, 400});
        CHECK(seen == std::vector<std::string>{"POST /a", "GET /b"});
        CHECK(peer.response.find("\r\nDate: ") != std::string::npos);
    }
    SUBCASE("a HEAD, then a GET on the same connection: the HEAD's response has no body") {
        raw_http peer{h.ioc};
        peer.start(h.port(),
                   "HEAD /abc HTTP/1.1\r\nHost: x\r\n\r\nGET /abc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        REQUIRE(wait_until(h.ioc, [&] { return peer.done; }));
        INFO(peer.response);
        CHECK(statuses(peer.response) == std::vector<int>{200, 200});
        // The HEAD's header block is followed at once by the GET's response.
        CHECK(peer.response.find("Content-Length: 4\r\nKeep-Alive: timeout=1\r\n\r\nHTTP/1.1 200") !=
              std::string::npos);
        CHECK(peer.response.substr(peer.response.size() - 4) == "/abc");
    }
    SUBCASE("a later request on the connection may be the WebSocket upgrade") {
        raw_http peer{h.ioc};
        peer.start(h.port(), "GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n" + upgrade_headers + "\r\n");
        REQUIRE(wait_until(h.ioc, [&] { return h.server->clients().size() == 1; }));
        REQUIRE(wait_until(h.ioc, [&] { return peer.response.find("HTTP/1.1 101") != std::string::npos; }));
        CHECK(statuses(peer.response) == std::vector<int>{200, 101});
    }
}

TEST_CASE("socket: asio_plain refuses a request from its header: the server's answer before the body is read") {
    harness<asio_server> h;
    auto& server = h.start();
    std::size_t handled = 0;
    server.on_http_header([](mesa::http_request const& header) -> std::optional<mesa::http_response> {
        if (header.header("Authorization") != std::optional<std::string>("Bearer k"))
            return mesa::http_response{401, {{"WWW-Authenticate", "Bearer"}}, "who?\n"};
        return std::nullopt;
    });
    server.on_http([&](mesa::http_request const&, mesa::http_responder respond) {
        ++handled;
        respond({202, {}, "ok"});
    });
    SUBCASE("401 to a request announcing 30 MB, sent without its body; the connection closes") {
        raw_http peer{h.ioc};
        peer.start(h.port(), "POST /dispatch HTTP/1.1\r\nHost: x\r\nContent-Length: 30000000\r\n\r\n");
        REQUIRE(wait_until(h.ioc, [&] { return peer.done; }));
        INFO(peer.response);
        CHECK(status_of(peer.response) == 401);
        CHECK(peer.response.find("\r\nWWW-Authenticate: Bearer\r\n") != std::string::npos);
        CHECK(peer.response.find("\r\nConnection: close\r\n") != std::string::npos);
        CHECK(handled == 0);
        CHECK(h.errors.empty());  // the application's answer, not a refusal of the transport
    }
    SUBCASE("let through: the body is read and handled") {
        auto response =
            ask(h,
                "POST /dispatch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\nContent-Length: 2\r\nConnection: "
                "close\r\n\r\n{}");
        CHECK(status_of(response) == 202);
        CHECK(handled == 1);
    }
}

TEST_CASE("socket: asio_plain refuses unknown transfer codings with 501 and garbage with 400, as HTTP refusals") {
    harness<asio_server> h;
    auto& server = h.start();
    server.on_http([&](mesa::http_request const&, mesa::http_responder respond) { respond({202, {}, "ok"}); });
    CHECK(status_of(ask(h,
                        "POST /dispatch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                        "5\r\nhello\r\n0\r\n\r\n")) == 501);
    // A TLS ClientHello on the ws:// port.
    CHECK(status_of(ask(h, std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11) + std::string(64, 'x'))) ==
          400);
    REQUIRE(h.errors.size() == 2);
    for (auto const& e : h.errors) {
        INFO(e);
        CHECK(e.rfind("HTTP request", 0) == 0);
        CHECK(e.find("upgrade") == std::string::npos);
    }
    CHECK(h.errors[0].find("refused with 501") != std::string::npos);
}

TEST_CASE("socket: asio_plain answers a flood of pings with the most recent pong, not one pong each") {
    // Before: every ping queued its own pong, so a client that pings and does
    // not read made the server hold gigabytes (RFC 6455 §5.5.3 allows
    // answering only the most recent ping).
    harness<asio_server> h;
    h.start();
    std::string pings;
    int const count = 20000;
    for (int i = 0; i < count; ++i) pings += client_frame(0x89, "ping " + std::to_string(i) + std::string(100, '.'));
    raw_http peer{h.ioc};
    exchange(h, peer, pings + client_frame(0x88, close_payload(1000)));
    std::vector<std::string> pongs;
    for (auto const& f : server_frames(peer.response))
        if (f.opcode == 10) pongs.push_back(f.payload);
    INFO(pongs.size() << " pongs");
    REQUIRE_FALSE(pongs.empty());
    CHECK(pongs.size() < count / 4);
    CHECK(pongs.back() == "ping " + std::to_string(count - 1) + std::string(100, '.'));  // the most recent
    REQUIRE(wait_until(h.ioc, [&] { return h.disconnections.size() == 1; }));
    CHECK(h.disconnections[0].code == 1000);
}

TEST_CASE("socket: asio_plain closes an HTTP connection whose responses the client does not read within send_timeout") {
    harness<asio_server> h;
    h.options.transport.send_timeout = 300ms;
    auto& server = h.start();
    std::string const body(1 << 20, 'x');
    server.on_http([&](mesa::http_request const&, mesa::http_responder respond) { respond({200, {}, body}); });
    asio::ip::tcp::socket client{h.ioc};
    client.open(asio::ip::tcp::v4());
    client.set_option(asio::socket_base::receive_buffer_size(4096));
    client.connect({asio::ip::make_address("127.0.0.1"), h.port()});
    std::string requests;
    int const count = 32;  // 32 MiB of responses, more than the kernel buffers hold
    for (int i = 0; i < count; ++i) requests += "GET /big HTTP/1.1\r\nHost: x\r\n\r\n";
    asio::write(client, asio::buffer(requests));
    run_for(h.ioc, 1500ms);  // not reading
    std::size_t received = 0;
    bool ended = false;
    std::array<char, 65536> buffer;
    std::function<void()> read = [&] {
        client.async_read_some(asio::buffer(buffer), [&](std::error_code ec, std::size_t n) {
            received += n;
            if (ec)
                ended = true;
            else
                read();
        });
    };
    read();
    REQUIRE(wait_until(
        h.ioc, [&] { return ended; }, 5000ms));
    CHECK(received < std::size_t(count) * body.size() / 2);
}
