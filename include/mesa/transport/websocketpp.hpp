#pragma once
// The socket transport: websocketpp over standalone Asio. One class template
// over our websocketpp configuration; this header defines the plain ws://
// alias, <mesa/transport/websocketpp_tls.hpp> the wss:// one (OpenSSL).
//
//   using server = mesa::server<mesa::transport::websocketpp_plain, mesa::broker::memory>;
//
// Thread-safety: none; an instance belongs to the thread running its io_context.
// One instance per server and thread. Frames are prepared once (header and
// payload) and the same prepared frame is queued on every recipient; a burst
// of broadcasts is joined into one buffer of whole frames (join()), so it
// costs each connection one queued message and one write.
#include <mesa/detail/config.hpp>  // first: the macros Asio and websocketpp need

#include <websocketpp/frame.hpp>
#include <websocketpp/server.hpp>

#include <asio/io_context.hpp>

#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include <mesa/transport/detail/listen_options.hpp>
#include <mesa/transport/detail/websocketpp_config.hpp>
#include <mesa/transport/detail/ws_key.hpp>
#include <mesa/transport/settings.hpp>

namespace mesa::transport {

/// A Mesa transport on a websocketpp server endpoint of configuration
/// `Config` (detail::basic_websocketpp_config<Socket>). What differs between
/// socket policies (options, scheme, endpoint set-up) comes from
/// detail::websocketpp_socket<Socket>.
template <class Config>
class basic_websocketpp {
    using endpoint_type = websocketpp::server<Config>;
    using message_type = typename Config::message_type;
    using socket_policy = detail::websocketpp_socket<typename Config::transport_config::socket_type>;

public:
    /// Socket options (none for plain TCP; certificate and key for TLS).
    using options = typename socket_policy::options;
    using connection_ptr = typename endpoint_type::connection_ptr;
    /// A prepared text frame, shared by all its recipients.
    using frame = typename message_type::ptr;
    /// "ws" or "wss".
    static constexpr char const* scheme = socket_policy::scheme;

    basic_websocketpp(asio::io_context& ioc, settings s, options o = {})
        : ioc_(ioc), settings_(std::move(s)), options_(std::move(o)) {
        // No "Server: WebSocket++/x.y.z" header: every connection would keep
        // its own copy of the name and of that header for its whole life.
        endpoint_.set_user_agent("");
    }
    basic_websocketpp(basic_websocketpp const&) = delete;
    basic_websocketpp& operator=(basic_websocketpp const&) = delete;

    /// Binds and starts accepting; throws std::system_error when the port
    /// cannot be bound, or the socket options are unusable (e.g. a TLS file
    /// that cannot be read): the only throwing call, made before serving.
    void start(events<connection_ptr> ev) {
        socket_policy::prepare(endpoint_, options_);  // before binding anything
        events_ = std::move(ev);
        endpoint_.get_elog().set_sink(events_.on_log);
        endpoint_.init_asio(&ioc_);
        endpoint_.set_reuse_addr(true);
        endpoint_.set_tcp_pre_bind_handler([this](auto const& acceptor) {
            websocketpp::lib::error_code ec;
            detail::set_listen_options(*acceptor, settings_, ec);
            return ec;
        });
        endpoint_.set_max_message_size(settings_.max_frame_bytes);
        endpoint_.set_validate_handler([this](websocketpp::connection_hdl h) { return validate(h); });
        endpoint_.set_open_handler([this](websocketpp::connection_hdl h) {
            auto con = lock(h);
            if (!con) return;
            // Writes are already coalesced per burst; Nagle would only delay
            // the next one behind a delayed ACK.
            asio::error_code ec;
            con->get_raw_socket().set_option(asio::ip::tcp::no_delay(true), ec);
            events_.on_open(con);
        });
        endpoint_.set_message_handler([this](websocketpp::connection_hdl h, typename endpoint_type::message_ptr msg) {
            if (auto con = lock(h)) {
                events_.on_message(con, msg->get_payload(), msg->get_opcode() != websocketpp::frame::opcode::text);
            }
        });
        // websocketpp answers a ping when its handler returns true.
        endpoint_.set_ping_handler([this](websocketpp::connection_hdl h, std::string) {
            auto con = lock(h);
            if (con && events_.on_control) events_.on_control(con);
            return con && con->get_state() == websocketpp::session::state::open;
        });
        endpoint_.set_pong_handler([this](websocketpp::connection_hdl h, std::string) {
            if (auto con = lock(h); con && events_.on_control) events_.on_control(con);
        });
        endpoint_.set_close_handler([this](websocketpp::connection_hdl h) { closed(h); });
        endpoint_.set_fail_handler([this](websocketpp::connection_hdl h) { failed(h); });
        endpoint_.set_http_handler([this](websocketpp::connection_hdl h) { http(h); });

        websocketpp::lib::error_code ec;
        if (settings_.host.empty()) {
            endpoint_.listen(asio::ip::tcp::v6(), settings_.port, ec);
            if (ec) endpoint_.listen(asio::ip::tcp::v4(), settings_.port, ec);  // no IPv6 on this host
        } else {
            endpoint_.listen(settings_.host, std::to_string(settings_.port), ec);
        }
        if (ec) throw std::system_error(ec, "mesa: cannot listen on port " + std::to_string(settings_.port));
        endpoint_.start_accept(ec);
        if (ec) throw std::system_error(ec, "mesa: cannot accept");
    }

    /// The bound port (useful after binding port 0).
    std::uint16_t local_port() {
        asio::error_code ec;
        auto ep = endpoint_.get_local_endpoint(ec);
        return ec ? 0 : ep.port();
    }

    /// Stops accepting; open connections stay until closed.
    void stop_listening() {
        websocketpp::lib::error_code ec;
        if (endpoint_.is_listening()) endpoint_.stop_listening(ec);
    }

    static frame prepare(std::string payload) {
        auto msg = std::make_shared<message_type>(typename message_type::con_msg_man_ptr(),
                                                  websocketpp::frame::opcode::text, 0);
        websocketpp::frame::basic_header header(websocketpp::frame::opcode::text, payload.size(), true, false);
        websocketpp::frame::extended_header extended(payload.size());
        msg->set_header(websocketpp::frame::prepare_header(header, extended));
        msg->get_raw_payload().swap(payload);
        msg->set_prepared(true);
        return msg;
    }

    /// The frames of `frames`, in order, as one frame: their bytes in one
    /// buffer, so each recipient costs one queued message and one write
    /// however many frames a burst holds.
    static frame join(std::vector<frame> const& frames) {
        std::string bytes;
        std::size_t size = 0;
        for (auto const& f : frames) size += f->get_header().size() + f->get_payload().size();
        bytes.reserve(size);
        for (auto const& f : frames) bytes.append(f->get_header()).append(f->get_payload());
        auto msg = std::make_shared<message_type>(typename message_type::con_msg_man_ptr(),
                                                  websocketpp::frame::opcode::text, 0);
        // No header of its own: the payload is already whole frames.
        msg->get_raw_payload().swap(bytes);
        msg->set_prepared(true);
        return msg;
    }

    static void send(connection_ptr const& con, frame const& f) { con->send(f); }

    /// Bytes queued on `con` and not yet written.
    static std::size_t buffered_bytes(connection_ptr const& con) { return con->get_buffered_amount(); }

    /// Payload bytes of a prepared frame.
    static std::size_t frame_size(frame const& f) { return f->get_payload().size(); }

    static void close(connection_ptr const& con, std::uint16_t code, std::string const& reason) {
        websocketpp::lib::error_code ec;
        con->close(code, reason, ec);
    }

private:
    connection_ptr lock(websocketpp::connection_hdl const& h) {
        websocketpp::lib::error_code ec;
        auto con = endpoint_.get_con_from_hdl(h, ec);
        return ec ? nullptr : con;
    }

    bool validate(websocketpp::connection_hdl h) {
        auto con = lock(h);
        if (!con) return false;
        // websocketpp ends the connection after a refusal: the response says so.
        if (!path_matches(settings_.path, con->get_resource())) {
            con->replace_header("Connection", "close");
            con->set_status(websocketpp::http::status_code::not_found);
            return false;
        }
        // websocketpp takes any key; the rest of the request it checks itself (see README).
        if (!detail::is_websocket_key(con->get_request_header("Sec-WebSocket-Key"))) {
            con->replace_header("Connection", "close");
            con->set_status(websocketpp::http::status_code::bad_request);
            return false;
        }
        int const refused = events_.admit ? events_.admit(con->get_request_header("Origin")) : 0;
        if (refused == 0) return true;
        con->replace_header("Connection", "close");
        con->set_status(static_cast<websocketpp::http::status_code::value>(refused));
        if (unsigned const wait = events_.retry_after ? events_.retry_after() : 0)
            con->replace_header("Retry-After", std::to_string(wait));
        return false;
    }

    void closed(websocketpp::connection_hdl h) {
        auto con = lock(h);
        if (!con || !con->context) return;
        // The code the peer sent, or ours when we closed first, or 1006.
        auto code = con->get_remote_close_code();
        auto reason = con->get_remote_close_reason();
        if (code == websocketpp::close::status::no_status || code == websocketpp::close::status::abnormal_close) {
            if (con->get_local_close_code() != websocketpp::close::status::no_status) {
                code = con->get_local_close_code();
                reason = con->get_local_close_reason();
            }
        }
        events_.on_close(con, code, reason);
    }

    void failed(websocketpp::connection_hdl h) {
        auto con = lock(h);
        if (!con) return;
        if (con->context) {
            events_.on_close(con, websocketpp::close::status::abnormal_close, "connection failed");
            return;
        }
        // A refused upgrade (validate(), or websocketpp's own 4xx for a
        // malformed handshake); plain HTTP requests end here too, and a peer
        // that left mid-handshake has no status.
        int const status = con->get_response_code();
        if (status >= 400 && !con->get_request_header("Upgrade").empty() && events_.on_refused)
            events_.on_refused(status, con->get_resource(), con->get_request_header("Origin"));
    }

    void http(websocketpp::connection_hdl h) {
        auto con = lock(h);
        if (!con) return;
        if (!events_.on_http) {
            con->replace_header("Connection", "close");
            con->set_status(websocketpp::http::status_code::upgrade_required);
            return;
        }
        auto const& req = con->get_request();
        http_request request;
        request.method = req.get_method();
        request.target = req.get_uri();
        for (auto const& [name, value] : req.get_headers()) request.headers.emplace_back(name, value);
        request.body = req.get_body();
        // Deferred, so the handler may answer later (after the broker took a
        // message); answered at once, it is written at once.
        con->defer_http_response();
        auto respond = [con, head = request.method == "HEAD"](http_response response) {
            con->set_status(static_cast<websocketpp::http::status_code::value>(response.status));
            for (auto const& [name, value] : response.headers) con->replace_header(name, value);
            // websocketpp closes the connection after an HTTP response; saying
            // so keeps HTTP/1.1 keep-alive clients from sending their next
            // request on it (ECONNRESET, and a POST they cannot safely retry).
            con->replace_header("Connection", "close");
            // A HEAD gets the length of the body it would have, and no body (RFC 9110 §9.3.2).
            auto const length = std::to_string(response.body.size());
            con->set_body(head ? std::string() : std::move(response.body));
            if (head) con->replace_header("Content-Length", length);
            websocketpp::lib::error_code ignored;  // the client may be gone
            con->send_http_response(ignored);
        };
        // websocketpp has read the body already: the header check runs now.
        if (events_.on_http_header) {
            if (auto refusal = events_.on_http_header(request)) return respond(std::move(*refusal));
        }
        events_.on_http(request, std::move(respond));
    }

    asio::io_context& ioc_;
    settings settings_;
    options options_;
    events<connection_ptr> events_;
    endpoint_type endpoint_;
};

/// Plain ws:// on TCP: `websocketpp_plain::options` is empty.
using websocketpp_plain = basic_websocketpp<detail::websocketpp_config>;

}  // namespace mesa::transport
