// A program built against an installed mesa-cpp with its Redis and TLS parts
// (hiredis and OpenSSL): a publication through mesa::broker::redis over
// rediss:// comes back on its subscription from the TLS redis-server at the URI
// given, whose certificate the CA file given signs. Exits 0 once it did.
#include <mesa/broker/redis.hpp>
#include <mesa/broker/redis_tls.hpp>
#include <mesa/version.hpp>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <iostream>
#include <string>
#include <string_view>

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: " << argv[0] << " rediss://host:port ca.pem\n";
        return 2;
    }
    asio::io_context ioc;
    mesa::broker::redis::options options;
    options.uri = argv[1];
    mesa::broker::redis_tls_options tls;
    tls.ca_file = argv[2];
    options.tls = mesa::broker::redis_tls(tls);
    // A refused handshake is only logged and retried: show why on failure.
    options.on_log = [](std::string text) { std::cerr << "redis: " << text << "\n"; };
    mesa::broker::redis broker{ioc.get_executor(), options};
    asio::steady_timer deadline{ioc, std::chrono::seconds(10)};
    std::string received;
    broker.subscribe(
        "mesa-consumer-tls",
        [&](std::string_view payload) {
            received = payload;
            deadline.cancel();
        },
        [&](std::error_code ec) {
            if (!ec) broker.publish("mesa-consumer-tls", "hello");
        });
    deadline.async_wait([&](std::error_code ec) {
        if (!ec) ioc.stop();
    });
    // The broker keeps its connections open: run until the publication came
    // back (or the deadline), not until the io_context runs out of work.
    while (received.empty() && !ioc.stopped()) ioc.run_one();

    if (received != "hello") {
        std::cerr << "no publication came back through " << argv[1] << "\n";
        return 1;
    }
    std::cout << "mesa-cpp " << MESA_VERSION_STRING << ": a publication came back through Redis over TLS\n";
}
