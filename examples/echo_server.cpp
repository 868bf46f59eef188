// A Mesa echo server: answers every PING with a PONG carrying the same data.
//   ws://localhost:4000/ws
#include <mesa/mesa.hpp>

#include <cstdlib>
#include <iostream>

int main(int argc, char** argv) {
    using server_type = mesa::basic_server<mesa::heartbeat, mesa::reconnect>;

    asio::io_context ioc;
    server_type::options options;
    options.port = argc > 1 ? static_cast<std::uint16_t>(std::atoi(argv[1])) : 4000;
    options.path = "/ws";
    server_type server{ioc, options};

    server.on_message([](auto const& client, mesa::message const& m) {
        if (m.t && *m.t == "PING") client->send(mesa::message("PONG", m.d));
    });
    server.on_error([](auto const& error) { std::cerr << "error: " << error.what << "\n"; });

    server.start();
    std::cout << "mesa echo server listening on ws://localhost:" << server.port() << "/ws" << std::endl;
    ioc.run();
}
