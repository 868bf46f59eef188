#pragma once
// What the server tells its transport, and what the transport reports back.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <mesa/http.hpp>

namespace mesa::transport {

/// TCP keepalive probes on client sockets (tcp(7)): a peer whose host
/// vanished without a FIN or RST (power loss, a dropped mobile link) is
/// found dead after `idle` + `probes` × `interval` of silence, and its
/// connection ends (1006) though nothing was sent to it. `idle` 0: off.
/// Linux bounds: `idle` and `interval` 1-32767 s, `probes` 1-127; outside
/// them the transport's start() throws (the listening socket refuses them).
struct tcp_keepalive {
    std::chrono::seconds idle{0};       // silence before the first probe (TCP_KEEPIDLE)
    std::chrono::seconds interval{10};  // between unanswered probes (TCP_KEEPINTVL)
    int probes = 6;                     // unanswered probes that end the connection (TCP_KEEPCNT)
};

/// The server options a transport enforces.
struct settings {
    std::string host;                 // bind address; empty: every interface
    std::uint16_t port = 4000;        // 0: any free port (see local_port())
    std::optional<std::string> path;  // unset: every path is served
    std::size_t max_frame_bytes = 1u << 20;
    bool reuse_port = false;  // SO_REUSEPORT: several listeners share the port
    tcp_keepalive keepalive{};
};

enum class log_level { debug, info, warning, error };

/// True when `target` (path plus optional query) is served under `path`.
inline bool path_matches(std::optional<std::string> const& path, std::string_view target) {
    if (!path) return true;
    auto end = target.find('?');
    return target.substr(0, end) == *path;
}

/// Callbacks from a transport to its server, all run on the server's thread.
/// `Connection` is the transport's connection handle.
template <class Connection>
struct events {
    std::function<void(Connection const&)> on_open;
    std::function<void(Connection const&, std::string_view payload, bool binary)> on_message;
    /// A ping or pong frame arrived (RFC 6455 §5.5.2, §5.5.3), before the
    /// transport answers a ping: for limits that count control frames with
    /// the messages (rate_limit); it may close the connection (then no
    /// pong). Optional; the memory transport has no control frames.
    std::function<void(Connection const&)> on_control;
    std::function<void(Connection const&, std::uint16_t code, std::string const& reason)> on_close;
    http_handler on_http;
    /// Asked once a plain HTTP request's header section is whole, before its
    /// body is read (transports that read it first ask just before on_http):
    /// a response refuses the request (see mesa::http_header_handler).
    http_header_handler on_http_header;
    std::function<void(log_level, std::string const&)> on_log;
    /// Decides on an upgrade before it completes: 0 admits it, anything else
    /// is the HTTP status it is refused with (503 when full, 403 for a
    /// foreign Origin).
    std::function<int(std::string_view origin)> admit;
    /// Asked right after `admit` refused an upgrade: the seconds the client
    /// should wait, sent as Retry-After (RFC 9110 §10.2.3); null or 0: none.
    std::function<unsigned()> retry_after;
    /// An upgrade the transport refused (by `admit`, or itself: 404 for
    /// another path, 400 for a malformed handshake) with HTTP `status`.
    std::function<void(int status, std::string_view target, std::string_view origin)> on_refused;
    /// A plain HTTP request (or bytes that are none) the transport refused
    /// itself with HTTP `status` (400 malformed, 408 not whole in time, 413
    /// body too large, 431 header too large, 501 unknown transfer coding),
    /// and why; not an upgrade, so not on_refused.
    std::function<void(int status, std::string_view target, std::string_view reason)> on_http_refused;
    /// A connection that failed before its HTTP request for a reason of its
    /// own, e.g. a TLS handshake the client could not complete: "peer: reason".
    std::function<void(std::string const& what)> on_failed;
};

}  // namespace mesa::transport
