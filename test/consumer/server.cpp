// A program built against an installed mesa-cpp (or one in subprojects/): a
// server on the embedded broker and a client on one io_context; the client's
// PING comes back as a PONG. Prints the version of the headers and exits 0
// once the round trip is done.
#include <mesa/client.hpp>
#include <mesa/mesa.hpp>
#include <mesa/version.hpp>

#include <asio/steady_timer.hpp>

#include <chrono>
#include <iostream>
#include <string>

static_assert(MESA_VERSION_MAJOR == mesa::version_major && MESA_VERSION_MINOR == mesa::version_minor &&
              MESA_VERSION_PATCH == mesa::version_patch);

int main() {
    using server_type = mesa::basic_server<mesa::heartbeat>;
    asio::io_context ioc;
    server_type::options options;
    options.host = "127.0.0.1";
    options.port = 0;
    server_type server{ioc, options};
    server.on_message([](auto const& client, mesa::message const& m) {
        if (m.t && *m.t == "PING") client->send(mesa::message("PONG", m.d));
    });
    server.start();

    mesa::client client{ioc, "ws://127.0.0.1:" + std::to_string(server.port())};
    asio::steady_timer deadline{ioc, std::chrono::seconds(10)};
    bool answered = false;
    client.on_message([&](mesa::message const& m) {
        if (!m.t || *m.t != "PONG") return;
        answered = m.d.at("n") == 1;
        client.disconnect();
        server.stop();
        deadline.cancel();
    });
    client.send(mesa::message("PING", {{"n", 1}}));
    deadline.async_wait([&](std::error_code ec) {
        if (!ec) ioc.stop();
    });
    ioc.run();

    if (!answered) {
        std::cerr << "no PONG from the server on port " << server.port() << "\n";
        return 1;
    }
    std::cout << "mesa-cpp " << MESA_VERSION_STRING << ": PING answered\n";
}
