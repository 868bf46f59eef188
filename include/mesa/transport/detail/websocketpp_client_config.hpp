#pragma once
// Our websocketpp CLIENT configuration, the client-side twin of
// websocketpp_config.hpp: one thread (no locks), errors routed to a hook,
// access logging compiled out, no permessage-deflate. One template over the
// socket policy serves ws:// (here) and wss:// (websocketpp_client_tls_config.hpp).
#include <mesa/detail/config.hpp>  // first: the macros Asio and websocketpp need

#include <cstdint>
#include <mesa/client/options.hpp>
#include <mesa/transport/detail/websocketpp_config.hpp>  // hook_logger
#include <string>
#include <type_traits>
#include <websocketpp/concurrency/none.hpp>
#include <websocketpp/config/core_client.hpp>
#include <websocketpp/logger/stub.hpp>
#include <websocketpp/random/random_device.hpp>
#include <websocketpp/transport/asio/endpoint.hpp>
#include <websocketpp/transport/asio/security/none.hpp>

namespace mesa::transport::detail {

template <class Socket>
struct basic_websocketpp_client_config : websocketpp::config::core_client {
    using type = basic_websocketpp_client_config;
    using base = websocketpp::config::core_client;

    using concurrency_type = websocketpp::concurrency::none;
    using elog_type = hook_logger;
    using alog_type = websocketpp::log::stub;
    // Frame masking keys (RFC 6455 5.3) need an unpredictable source.
    using rng_type = websocketpp::random::random_device::int_generator<std::uint32_t, concurrency_type>;

    static bool const enable_multithreading = false;

    using transport_config = single_thread_transport_config<type, Socket>;
    using transport_type = websocketpp::transport::asio::endpoint<transport_config>;

    // Mesa frames are small JSON objects.
    static const size_t connection_read_buffer_size = 4096;
    // Left on: websocketpp's client terminates every connection with
    // "Extension negotiation failed" when extensions are disabled. The
    // permessage-deflate type stays core_client's `disabled`, so nothing is
    // offered or negotiated.
    static const bool enable_extensions = true;
};

/// What mesa::socket_client needs to know about a socket policy:
/// - `options`: the client's options type;
/// - `scheme`: the URL scheme it connects to; `client_name`: the alias users
///   type; `wrong_scheme_hint`: what to do with a URL of the other scheme;
/// - `security`: per-client state built from the options and the URL's host
///   (may throw on unusable options), with `prepare(endpoint)` once,
///   `on_attempt()` before each connection and `failure()`, a reason the last
///   attempt failed that the socket error does not tell ("" when none).
/// Specialized per socket policy; the TLS one is in
/// websocketpp_client_tls_config.hpp.
template <class Socket>
struct websocketpp_client_socket {
    static_assert(!std::is_same_v<Socket, Socket>,
                  "mesa::socket_client<Socket>: Socket must be websocketpp's asio "
                  "basic_socket::endpoint (ws://, <mesa/client.hpp>) or tls_socket::endpoint "
                  "(wss://, include <mesa/client_tls.hpp>)");
};

template <>
struct websocketpp_client_socket<websocketpp::transport::asio::basic_socket::endpoint> {
    using options = client_options;
    static constexpr char const* scheme = "ws";
    static constexpr char const* client_name = "mesa::client";
    static constexpr char const* wrong_scheme_hint =
        "wss:// needs TLS: include <mesa/client_tls.hpp> and use mesa::tls_client "
        "(links OpenSSL; meson: the mesa-tls dependency)";

    /// Plain TCP has nothing to set up and nothing to add to a failure.
    struct security {
        security(options const&, std::string const&) {}
        template <class Endpoint>
        void prepare(Endpoint&) {}
        void on_attempt() {}
        std::string failure() const { return {}; }
    };
};

}  // namespace mesa::transport::detail
