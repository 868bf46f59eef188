#pragma once
// The wss:// transport: the websocketpp transport on websocketpp's Asio TLS
// socket (OpenSSL through standalone asio::ssl). Kept out of <mesa/mesa.hpp>
// so that plain servers need no OpenSSL; link with OpenSSL (libssl and
// libcrypto; meson: the `mesa-tls` dependency).
//
//   using server = mesa::server<mesa::transport::websocketpp_tls, mesa::broker::memory, mesa::heartbeat>;
//   server::options opts;
//   opts.transport.certificate_chain_file = "/etc/mesa/cert.pem";
//   opts.transport.private_key_file = "/etc/mesa/key.pem";
//
// The files are read once, at start(), which throws (std::system_error or
// std::invalid_argument, naming the file) when one cannot be read or used.
// TLS 1.2 and 1.3 only, no compression. Setting `ca_file` requires every
// client to present a certificate signed by one of its CAs.
//
// Thread-safety: as websocketpp_plain; one instance per io_context thread.
#include <mesa/transport/detail/websocketpp_tls_config.hpp>
#include <mesa/transport/websocketpp.hpp>

namespace mesa::transport {

/// wss:// on TLS: options are the PEM paths of certificate chain, key and
/// optional client CA.
using websocketpp_tls = basic_websocketpp<detail::websocketpp_tls_config>;

}  // namespace mesa::transport
