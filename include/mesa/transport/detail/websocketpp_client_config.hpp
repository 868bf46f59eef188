#pragma once
// Our websocketpp CLIENT configuration, the client-side twin of
// websocketpp_config.hpp: one thread (no locks), errors routed to a hook,
// access logging compiled out, no permessage-deflate, plain TCP sockets.
#include <cstdint>
#include <mesa/transport/detail/websocketpp_config.hpp>  // hook_logger
#include <websocketpp/concurrency/none.hpp>
#include <websocketpp/config/core_client.hpp>
#include <websocketpp/logger/stub.hpp>
#include <websocketpp/random/random_device.hpp>
#include <websocketpp/transport/asio/endpoint.hpp>

namespace mesa::transport::detail {

struct websocketpp_client_config : websocketpp::config::core_client {
    using type = websocketpp_client_config;
    using base = websocketpp::config::core_client;

    using concurrency_type = websocketpp::concurrency::none;
    using elog_type = hook_logger;
    using alog_type = websocketpp::log::stub;
    // Frame masking keys (RFC 6455 5.3) need an unpredictable source.
    using rng_type =
        websocketpp::random::random_device::int_generator<std::uint32_t, concurrency_type>;

    static bool const enable_multithreading = false;

    struct transport_config : base::transport_config {
        using concurrency_type = type::concurrency_type;
        using elog_type = type::elog_type;
        using alog_type = type::alog_type;
        using request_type = type::request_type;
        using response_type = type::response_type;
        using socket_type = websocketpp::transport::asio::basic_socket::endpoint;
        static bool const enable_multithreading = false;
    };
    using transport_type = websocketpp::transport::asio::endpoint<transport_config>;

    // Mesa frames are small JSON objects.
    static const size_t connection_read_buffer_size = 4096;
    // Left on: websocketpp's client terminates every connection with
    // "Extension negotiation failed" when extensions are disabled. The
    // permessage-deflate type stays core_client's `disabled`, so nothing is
    // offered or negotiated.
    static const bool enable_extensions = true;
};

}  // namespace mesa::transport::detail
