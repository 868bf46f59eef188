#pragma once
// Socket options of a transport's listening socket, set before it binds:
// SO_REUSEPORT, and TCP keepalive, which the sockets it accepts inherit
// (Linux copies SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL and TCP_KEEPCNT
// to an accepted socket), so that a connection costs no option call.
#include <mesa/detail/config.hpp>  // first: the macros Asio and websocketpp need

#include <asio/detail/socket_option.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <system_error>

#include <mesa/transport/settings.hpp>

namespace mesa::transport::detail {

/// Sets what `s` asks for on `acceptor` (an open asio::ip::tcp::acceptor);
/// the first failure in `ec`.
template <class Acceptor>
void set_listen_options(Acceptor& acceptor, settings const& s, std::error_code& ec) {
    using asio::detail::socket_option::boolean;
    using asio::detail::socket_option::integer;
    if (!ec && s.reuse_port) acceptor.set_option(boolean<SOL_SOCKET, SO_REUSEPORT>(true), ec);
    auto const& k = s.keepalive;
    if (ec || k.idle.count() <= 0) return;
    acceptor.set_option(boolean<SOL_SOCKET, SO_KEEPALIVE>(true), ec);
    if (!ec) acceptor.set_option(integer<IPPROTO_TCP, TCP_KEEPIDLE>(static_cast<int>(k.idle.count())), ec);
    if (!ec) acceptor.set_option(integer<IPPROTO_TCP, TCP_KEEPINTVL>(static_cast<int>(k.interval.count())), ec);
    if (!ec) acceptor.set_option(integer<IPPROTO_TCP, TCP_KEEPCNT>(k.probes), ec);
}

}  // namespace mesa::transport::detail
