// A Mesa server with every client-facing feature on, for the interop tests in
// which the real npm @cryb/mesa 1.5.8 Client talks to us (run_features.js).
//
// Usage: interop_server [heartbeat_ms=200] [reconnect_ms=5000]
// Prints "listening on PORT" (a free port) on stdout once it accepts.
//
//   op 2 {token}: "bad" fails (closed with 1008); otherwise id = token,
//                 user {"id": token, "name": "User " + token}
//   PING d       -> PONG d (to the sender)
//   SEND_TO {to, n} -> server.send(SYNCED {n}, {to})  (synced when `to` is offline)
//   ECHO_ALL d   -> server.send(ECHO_ALL d) to everyone
#include <mesa/mesa.hpp>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>

int main(int argc, char** argv) {
    using server_type = mesa::server<mesa::transport::websocketpp_plain, mesa::broker::memory, mesa::heartbeat,
                                     mesa::reconnect, mesa::authentication, mesa::sync>;

    long const heartbeat_ms = argc > 1 ? std::atol(argv[1]) : 200;
    long const reconnect_ms = argc > 2 ? std::atol(argv[2]) : 5000;

    asio::io_context ioc;
    server_type::options options;
    options.port = 0;  // path unset: every path is served
    auto& hb = options.feature<mesa::heartbeat>();
    hb.interval = std::chrono::milliseconds(heartbeat_ms);
    hb.max_attempts = 2;
    options.feature<mesa::reconnect>().interval = std::chrono::milliseconds(reconnect_ms);
    server_type server{ioc, options};

    server.feature<mesa::authentication>().on_authenticate(
        [](auto const&, mesa::json::object const& credentials, mesa::authentication::done done) {
            auto const* token = credentials.if_contains("token");
            if (!token || !token->is_string()) return done.fail("no token");
            std::string const id(token->get_string());
            if (id == "bad") return done.fail("bad token");
            done.succeed(id, mesa::json::object{{"id", id}, {"name", "User " + id}});
        });

    server.on_message([&server](auto const& client, mesa::message const& m) {
        if (!m.t) return;
        if (*m.t == "PING") {
            client->send(mesa::message("PONG", m.d));
        } else if (*m.t == "SEND_TO") {
            auto const* to = m.d.if_contains("to");
            auto const* n = m.d.if_contains("n");
            if (!to || !to->is_string() || !n) return;
            server.send(mesa::message("SYNCED", {{"n", *n}}), {std::string(to->get_string())});
        } else if (*m.t == "ECHO_ALL") {
            server.send(mesa::message("ECHO_ALL", m.d));
        }
    });
    server.on_error([](auto const& error) { std::cerr << "interop_server error: " << error.what << std::endl; });

    server.start();
    std::cout << "listening on " << server.port() << std::endl;
    ioc.run();
}
