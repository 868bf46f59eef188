#pragma once
// Our websocketpp configuration on websocketpp's Asio TLS socket (OpenSSL via
// standalone asio::ssl), with one server context (tls_context.hpp), loaded
// once at start(), shared by every connection.
// Our plain configuration first: tls.hpp relies on websocketpp's transport
// headers having been included before it (as websocketpp/config/asio.hpp does).
#include <mesa/transport/detail/websocketpp_config.hpp>

#include <mesa/detail/config.hpp>  // first: the macros Asio and websocketpp need

#include <websocketpp/transport/asio/security/tls.hpp>

#include <mesa/transport/detail/tls_context.hpp>

#include <memory>

namespace mesa::transport::detail {

/// The wss:// configuration: the plain one with the TLS socket policy.
using websocketpp_tls_config = basic_websocketpp_config<websocketpp::transport::asio::tls_socket::endpoint>;

template <>
struct websocketpp_socket<websocketpp::transport::asio::tls_socket::endpoint> {
    /// PEM file paths, read at start().
    using options = tls_files;
    static constexpr char const* scheme = "wss";

    template <class Endpoint>
    static void prepare(Endpoint& endpoint, options const& o) {
        std::shared_ptr<asio::ssl::context> ctx = make_tls_context(o);
        endpoint.set_tls_init_handler([ctx](websocketpp::connection_hdl) { return ctx; });
    }
};

}  // namespace mesa::transport::detail
