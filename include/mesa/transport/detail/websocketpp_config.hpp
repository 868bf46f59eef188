#pragma once
// Our websocketpp configuration: one thread per server (no locks, no
// strands), errors routed to the server's log hook, access logging compiled
// out, and a slot on every connection for the server's client object. One
// template over the socket policy serves ws:// and wss:// alike.
#include <mesa/detail/config.hpp>  // first: the macros Asio and websocketpp need

#include <websocketpp/concurrency/none.hpp>
#include <websocketpp/config/core.hpp>
#include <websocketpp/logger/levels.hpp>
#include <websocketpp/logger/stub.hpp>
#include <websocketpp/transport/asio/endpoint.hpp>
#include <websocketpp/transport/asio/security/none.hpp>

#include <functional>
#include <string>

#include <mesa/transport/settings.hpp>

namespace mesa::transport::detail {

/// websocketpp error logger that forwards to a hook instead of stdout.
class hook_logger {
public:
    using sink = std::function<void(log_level, std::string const&)>;

    explicit hook_logger(websocketpp::log::channel_type_hint::value) {}
    hook_logger(websocketpp::log::level, websocketpp::log::channel_type_hint::value) {}

    void set_sink(sink s) { sink_ = std::move(s); }
    void set_channels(websocketpp::log::level) {}
    void clear_channels(websocketpp::log::level) {}

    // websocketpp writes some channels without testing them first (e.g. info
    // "Extension negotiation failed" on every browser connection): filter here.
    void write(websocketpp::log::level channel, std::string const& text) {
        if (sink_ && static_test(channel)) sink_(to_level(channel), text);
    }
    void write(websocketpp::log::level channel, char const* text) { write(channel, std::string(text)); }

    constexpr bool static_test(websocketpp::log::level channel) const { return (channel & kept_channels) != 0; }
    bool dynamic_test(websocketpp::log::level channel) { return sink_ && static_test(channel); }

private:
    static constexpr websocketpp::log::level kept_channels =
        websocketpp::log::elevel::warn | websocketpp::log::elevel::rerror | websocketpp::log::elevel::fatal;

    static log_level to_level(websocketpp::log::level channel) {
        if (channel & (websocketpp::log::elevel::rerror | websocketpp::log::elevel::fatal)) return log_level::error;
        return log_level::warning;
    }

    sink sink_;
};

/// Per-connection slot holding the server's client object.
struct connection_context {
    void* context = nullptr;
};

/// The Asio transport settings of websocketpp configuration `Config`
/// (server or client) over socket policy `Socket`, on one thread. Read by
/// websocketpp only once `Config` is complete.
template <class Config, class Socket>
struct single_thread_transport_config : Config::base::transport_config {
    using concurrency_type = typename Config::concurrency_type;
    using elog_type = typename Config::elog_type;
    using alog_type = typename Config::alog_type;
    using request_type = typename Config::request_type;
    using response_type = typename Config::response_type;
    using socket_type = Socket;
    static bool const enable_multithreading = false;
};

/// Our server configuration over websocketpp socket policy `Socket` (plain
/// TCP or TLS); nothing else differs between ws:// and wss://.
template <class Socket>
struct basic_websocketpp_config : websocketpp::config::core {
    using type = basic_websocketpp_config;
    using base = websocketpp::config::core;

    using concurrency_type = websocketpp::concurrency::none;
    using elog_type = hook_logger;
    using alog_type = websocketpp::log::stub;
    using connection_base = connection_context;

    static bool const enable_multithreading = false;

    using transport_config = single_thread_transport_config<type, Socket>;
    using transport_type = websocketpp::transport::asio::endpoint<transport_config>;

    // The read buffer is inline in every connection object, idle or not.
    // websocketpp parses handshakes and frames incrementally, so it bounds
    // only how much one read takes in, not what a request or frame may be:
    // Mesa frames are small JSON objects that fit one read, and a frame up to
    // max_frame_bytes or a large handshake just takes several reads.
    // websocketpp's default is 16 KiB.
    static const size_t connection_read_buffer_size = 1024;
    // Mesa does not negotiate extensions (no permessage-deflate).
    static const bool enable_extensions = false;
};

/// The plain ws:// configuration.
using websocketpp_config = basic_websocketpp_config<websocketpp::transport::asio::basic_socket::endpoint>;

/// What basic_websocketpp needs to know about a socket policy: its options
/// (transport::websocketpp_*::options), its URI scheme, and how to set an
/// endpoint up before it listens. Specialized per socket policy; the TLS one
/// is in websocketpp_tls_config.hpp.
template <class Socket>
struct websocketpp_socket;

template <>
struct websocketpp_socket<websocketpp::transport::asio::basic_socket::endpoint> {
    /// Plain TCP has nothing to configure.
    struct options {};
    static constexpr char const* scheme = "ws";

    template <class Endpoint>
    static void prepare(Endpoint&, options const&) {}
};

}  // namespace mesa::transport::detail
