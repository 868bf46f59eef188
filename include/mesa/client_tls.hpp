#pragma once
// mesa::tls_client: mesa::client over wss:// (websocketpp's Asio TLS socket,
// OpenSSL through standalone asio::ssl). Kept out of <mesa/client.hpp> so
// that plain clients need no OpenSSL; link with OpenSSL (libssl and
// libcrypto; meson: the `mesa-tls` dependency).
//
//   mesa::tls_client::options o;
//   o.tls.ca_file = "/etc/mesa/ca.pem";  // empty: the system's trust store
//   mesa::tls_client c{ioc, "wss://mesa.example.com/ws", o};
//
// The server is authenticated by default: its certificate chain must lead to
// a trusted CA (tls.ca_file, else the system's trust store) and name the
// URL's host in its subjectAltName. A refused certificate is a
// connection_failed error event saying why ("certificate verification
// failed: ..."); with reconnects on, it is retried like any failed attempt.
// tls.verify_peer = false turns both checks off, for tests only. The files
// are read in the constructor, which throws (std::system_error or
// std::invalid_argument, naming the option and the file) when one cannot be
// used. TLS 1.2 and 1.3 only. SNI is the URL's host.
//
// Everything else, thread-safety included, is mesa::client's (client.hpp).
#include <mesa/client.hpp>
#include <mesa/client/tls_options.hpp>
#include <mesa/transport/detail/websocketpp_client_tls_config.hpp>

namespace mesa {

/// The wss:// client: mesa::client with `options.tls` (client_tls_options).
using tls_client = socket_client<websocketpp::transport::asio::tls_socket::endpoint>;

}  // namespace mesa
