#pragma once
// wss:// on the lean Asio transport: basic_asio (asio.hpp) with TLS by
// OpenSSL driven directly on each non-blocking socket. Kept out of
// <mesa/mesa.hpp> so that plain servers need no OpenSSL; link with OpenSSL
// (libssl and libcrypto; meson: the `mesa-tls` dependency).
//
//   using server = mesa::server<mesa::transport::asio_tls, mesa::broker::memory, mesa::heartbeat>;
//   server::options opts;
//   opts.transport.certificate_chain_file = "/etc/mesa/cert.pem";
//   opts.transport.private_key_file = "/etc/mesa/key.pem";
//
// The files are read once, at start(), which throws (std::system_error or
// std::invalid_argument, naming the file) when one cannot be read or used.
// TLS 1.2 and 1.3 only, no compression, no renegotiation. Setting `ca_file`
// requires every client to present a certificate signed by one of its CAs.
//
// An idle connection holds its socket, its OpenSSL session (without record
// buffers: SSL_MODE_RELEASE_BUFFERS) and the state asio_plain keeps; no
// buffer of its own (see detail/tls_stream.hpp). handshake_timeout bounds the
// TLS handshake and the HTTP request together; a client that fails the TLS
// handshake (plain HTTP on this port, an unknown CA, no client certificate
// when one is required) is closed at once and reported as an error event
// naming the reason, unless it left without sending a byte. close_timeout
// bounds the closing handshake as on asio_plain; the connection then ends
// with a close_notify alert.
//
// Thread-safety: as asio_plain; one instance per io_context thread.
#include <mesa/transport/asio.hpp>
#include <mesa/transport/detail/tls_context.hpp>
#include <mesa/transport/detail/tls_stream.hpp>

namespace mesa::transport {

/// Options of asio_tls: asio_plain's (timeouts, request limits) and the PEM
/// paths of certificate chain, key and optional client CA.
struct asio_tls_options : asio_options, detail::tls_files {};

/// wss:// on Asio sockets with OpenSSL; see the top of this header.
using asio_tls = basic_asio<detail::tls_stream<asio_tls_options>>;

}  // namespace mesa::transport
