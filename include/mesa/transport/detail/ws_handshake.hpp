#pragma once
// The requests of a connection as a sans-I/O state machine: request bytes
// in, a decision and the response bytes out. No socket, no timer; the Asio
// transport feeds it what it reads and writes what it returns, and the unit
// tests feed it byte strings. One request at a time: after a plain HTTP
// request is answered, next() starts the following one on the same
// connection (HTTP/1.1 persistent connections, RFC 9112 §9.3) with the bytes
// already fed past the first (pipelining, §9.3.2); any of them may be the
// WebSocket upgrade.
//
// The request is parsed by Boost.Beast's http::request_parser (header-only,
// it keeps nothing between calls but the caller's bytes, so the handshake
// keeps them until the header is whole). The WebSocket checks are ours
// (RFC 6455 §4.2.1), applied to requests whose `Upgrade` names `websocket`;
// any other request is plain HTTP for the server's http handler.
//
// Refusals, in this order (the first that applies):
//   431 the request line and headers exceed request_limits::max_header_bytes;
//   400 a request that is not HTTP/1.x;
//   404 an upgrade for a path the server does not serve;
//   400 a malformed upgrade: not GET, not HTTP/1.1, not one valid Host, `Connection`
//       without the `upgrade` token, a body;
//   426 `Sec-WebSocket-Version` missing or not 13 (the response says
//       `Sec-WebSocket-Version: 13`, RFC 6455 §4.4);
//   400 `Sec-WebSocket-Key` missing, repeated, or not the base64 of 16 bytes;
//   then the server's own checks (transport::events::admit): Origin 403,
//   capacity 503.
// A plain HTTP request, once its header section is whole:
//   400 not one Host with a valid value (none is allowed in HTTP/1.0),
//       RFC 9112 §3.2;
//   400 HTTP/1.0 with a Transfer-Encoding: faulty framing (RFC 9112 §6.1);
//   501 a Transfer-Encoding other than `chunked` alone (RFC 9112 §6.1);
//   then the server's header check (verdict `header`: 401, its own 413, ...);
//   413 a body over max_body_bytes (announced: before it is read; chunked:
//       as soon as it grows over);
// and 408 for a request begun but not whole within the transport's timeout
// (timed_out(), RFC 9110 §15.5.9).
//
// Leniencies: empty lines before a request line are skipped (RFC 9112
// §2.2; more than max_header_bytes of them: 400); an absolute-form target
// becomes its origin-form (§3.2.2); HTTP/1.2 to 1.9 are read as HTTP/1.1
// (RFC 9110 §2.5). Expect: 100-continue is ignored in HTTP/1.0 (§10.1.1).
// Every response but a 1xx carries a Date (RFC 9110 §6.6.1).
//
// Persistence (keep_alive()): an answered request leaves the connection open
// unless it said `Connection: close`, is HTTP/1.0 without `keep-alive`, or
// was refused with its body unread (its framing is then unknown); every
// refusal of the transport's own closes.
//
// Thread-safety: none; one object per connection, used by one thread.
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/rfc7230.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/optional/optional.hpp>

#include <websocketpp/base64/base64.hpp>
#include <websocketpp/sha1/sha1.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <mesa/http.hpp>
#include <mesa/transport/detail/ws_key.hpp>
#include <mesa/transport/settings.hpp>

namespace mesa::transport::detail {

/// Bounds of one request on the WebSocket port.
struct request_limits {
    // Request line and headers; 8 KiB is what common proxies and servers
    // (nginx, Node) accept by default. Over it: 431.
    std::size_t max_header_bytes = 8 * 1024;
    // Body of a plain HTTP request (Content-Length or chunked); over it: 413.
    std::size_t max_body_bytes = 1u << 20;
    // How long a persistent connection may wait for its next request; sent
    // as `Keep-Alive: timeout=<s>` (as Node's http server does) so clients
    // such as undici stop reusing it before the server closes it.
    std::chrono::milliseconds idle_timeout{5000};
};

/// What a handshake made of the bytes fed so far.
enum class request_verdict {
    need_more,  // read more bytes and feed them
    interim,    // write response() (100 Continue), then feed more bytes
    upgrade,    // a valid WebSocket upgrade: ask the server (admit), then accept() or refuse()
    header,     // a plain HTTP request's header section is whole: ask the server (header()),
                // then refuse_request() or feed({}) to read its body
    http,       // a whole plain HTTP request: take_request(), then respond() and next()
    refused,    // write response(), then next() when keep_alive(), else close: status() says why
};

namespace handshake_detail {

inline char lower(char c) { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; }

inline bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (lower(a[i]) != lower(b[i])) return false;
    return true;
}

/// True when the comma-separated token list `value` holds `token` (any case, RFC 7230 §7).
inline bool has_token(boost::beast::string_view value, std::string_view token) {
    for (auto const& t : boost::beast::http::token_list(value))
        if (iequals(std::string_view(t.data(), t.size()), token)) return true;
    return false;
}

/// Whether `value` is a valid Host field value (RFC 9112 §3.2, RFC 3986
/// §3.2.2): empty, or a host (reg-name, or an IP-literal in brackets) and
/// an optional `:port` of digits.
inline bool valid_host(std::string_view value) {
    auto const reg_name_char = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               std::string_view("-._~%!$&'()*+,;=").find(c) != std::string_view::npos;
    };
    std::string_view host = value, port;
    if (!host.empty() && host.front() == '[') {
        auto const close = host.find(']');
        if (close == std::string_view::npos) return false;
        for (char c : host.substr(1, close - 1))
            if (!reg_name_char(c) && c != ':') return false;
        port = host.substr(close + 1);
        if (!port.empty() && port.front() != ':') return false;
        host = {};
    } else if (auto const colon = host.find(':'); colon != std::string_view::npos) {
        port = host.substr(colon);
        host = host.substr(0, colon);
    }
    for (char c : host)
        if (!reg_name_char(c)) return false;
    if (!port.empty()) port.remove_prefix(1);
    for (char c : port)
        if (c < '0' || c > '9') return false;
    return true;
}

/// The origin-form of a request target: an absolute-form one
/// (`http://host/path?q`, RFC 9112 §3.2.2) loses its scheme and authority.
inline std::string origin_form(std::string_view target) {
    auto const colon = target.find("://");
    if (target.empty() || target.front() == '/' || colon == std::string_view::npos) return std::string(target);
    for (char c : target.substr(0, colon))
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' || c == '-' ||
              c == '.'))
            return std::string(target);
    auto const rest = target.substr(colon + 3);
    auto const path = rest.find_first_of("/?#");
    if (path == std::string_view::npos) return "/";
    std::string out = rest[path] == '/' ? std::string() : std::string("/");
    out.append(rest.substr(path));
    return out;
}

/// The current time as an IMF-fixdate (RFC 9110 §5.6.7), formatted at most
/// once a second per thread.
inline std::string const& http_date() {
    thread_local std::time_t cached_at = -1;
    thread_local std::string cached;
    std::time_t const now = std::time(nullptr);
    if (now != cached_at) {
        std::tm tm{};
        gmtime_r(&now, &tm);
        static constexpr char const* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
        static constexpr char const* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
        char buffer[40];
        std::snprintf(buffer, sizeof buffer, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
                      months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
        cached = buffer;
        cached_at = now;
    }
    return cached;
}

}  // namespace handshake_detail

/// The `Sec-WebSocket-Accept` value for `key` (RFC 6455 §4.2.2 item 5.4).
inline std::string websocket_accept(std::string_view key) {
    std::string text(key);
    text += "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char digest[20];
    websocketpp::sha1::calc(text.data(), text.size(), digest);
    return websocketpp::base64_encode(digest, sizeof digest);
}

/// An HTTP/1.1 response: `status`, the Date (RFC 9110 §6.6.1), `headers` (each "Name: value\r\n"), a
/// text body, then `connection` (the Connection and Keep-Alive fields, each
/// line whole; by default the end of the connection). `head`: the response
/// to a HEAD, whose Content-Length is that of `body` but which carries none
/// (RFC 9110 §9.3.2).
inline std::string http_response_bytes(int status, std::string_view headers, std::string_view body,
                                       std::string_view content_type = "text/plain",
                                       std::string_view connection = "Connection: close\r\n", bool head = false) {
    namespace http = boost::beast::http;
    auto const reason = http::obsolete_reason(http::int_to_status(static_cast<unsigned>(status)));
    std::string out = "HTTP/1.1 " + std::to_string(status) + " ";
    out.append(reason.data(), reason.size());
    out += "\r\nDate: ";
    out += handshake_detail::http_date();
    out += "\r\n";
    out += headers;
    if (!body.empty() && !content_type.empty()) out.append("Content-Type: ").append(content_type).append("\r\n");
    out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    out += connection;
    out += "\r\n";
    if (!head) out += body;
    return out;
}

/// The requests of one connection, each from its first byte to an upgrade,
/// a plain HTTP request (answered, then the next one) or a refusal.
///
///   handshake h{settings.path, limits};
///   switch (h.feed(bytes)) { case request_verdict::upgrade: write(h.accept()); ... }
class handshake {
public:
    /// `path`: the served path (unset: every path), read until the verdict;
    /// it must outlive the handshake.
    explicit handshake(std::optional<std::string> const& path, request_limits limits = {})
        : path_(&path), limits_(limits) {
        start_parser();
    }
    handshake(handshake const&) = delete;
    handshake& operator=(handshake const&) = delete;

    /// Takes the next bytes read from the peer (empty: go on with what was
    /// fed, after an interim response or the server's header check) and says
    /// what to do.
    request_verdict feed(std::string_view bytes) {
        if (done_) return verdict_;
        input_.append(bytes.data(), bytes.size());
        if (!parser_->got_some()) {
            // Empty lines before the request line are ignored (RFC 9112
            // §2.2: clients may send one after a POST body), as many as fit
            // in the header limit.
            std::size_t skip = 0;
            while (skip < input_.size() && (input_[skip] == '\r' || input_[skip] == '\n')) {
                if (input_[skip] == '\r' && (skip + 1 == input_.size() || input_[skip + 1] != '\n')) break;
                skip += input_[skip] == '\r' ? 2 : 1;
            }
            input_.erase(0, skip);
            empty_lines_bytes_ += skip;
            if (empty_lines_bytes_ > limits_.max_header_bytes)
                return refuse_now(400, "malformed HTTP request: too many empty lines before the request line");
            if (input_ == "\r") return request_verdict::need_more;
        }
        started_ = started_ || !input_.empty();
        if (header_bytes_ == 0) {
            // Beast takes only HTTP/1.0 and 1.1; a later 1.x is served as
            // 1.1 (RFC 9110 §2.5). The request line is still whole in input_.
            auto const end = input_.find("\r\n");
            if (end != std::string::npos && end >= 9 && input_.compare(end - 9, 8, " HTTP/1.") == 0 &&
                input_[end - 1] >= '2' && input_[end - 1] <= '9')
                input_[end - 1] = '1';
        }
        namespace http = boost::beast::http;
        if (header_pending_) {  // the server let the header through
            header_pending_ = false;
            if (auto v = after_header_check()) return *v;
        }
        for (;;) {
            if (parser_->is_done()) {  // Beast must not be fed past the request's end
                done_ = true;
                verdict_ = request_verdict::http;
                keep_alive_ = parser_->get().keep_alive();
                return verdict_;
            }
            // Beast 1.81 asserts when the last chunk ("0\r\n\r\n", kept
            // unconsumed until whole) comes back in a piece of under 5 bytes.
            if (parser_->is_header_done() && parser_->chunked() && input_.size() < 5) return request_verdict::need_more;
            boost::system::error_code ec;
            std::size_t const used = parser_->put(boost::asio::buffer(input_.data(), input_.size()), ec);
            input_.erase(0, used);
            if (!parser_->is_header_done()) header_bytes_ += used;
            if (ec == http::error::need_more) {
                // Beast takes a header line by line, each only whole: an
                // unfinished one stays in input_.
                if (!parser_->is_header_done() && header_bytes_ + input_.size() > limits_.max_header_bytes)
                    return refuse_now(431, "request header fields too large");
                return request_verdict::need_more;
            }
            if (ec == http::error::header_limit) return refuse_now(431, "request header fields too large");
            if (ec == http::error::body_limit) return refuse_now(413, "request body too large");
            if (ec) return refuse_now(400, "malformed HTTP request: " + ec.message());
            if (!header_checked_ && parser_->is_header_done()) {
                header_checked_ = true;
                parser_->eager(true);  // the header passed: read the body as it comes
                if (auto v = check_header()) return *v;
            }
            if (used == 0 && !parser_->is_done()) return request_verdict::need_more;
        }
    }

    /// After `upgrade`: the request target (path and query, as sent).
    std::string_view target() const { return {target_}; }
    /// After `upgrade`: the Origin header (empty when absent).
    std::string_view origin() const { return {origin_}; }

    /// After `upgrade`: the 101 response.
    std::string accept() const {
        return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Accept: " +
               websocket_accept(key_) + "\r\n\r\n";
    }

    /// After `upgrade`: the response refusing it with `status` (403, 503,
    /// ...) and `retry_after` seconds as Retry-After (0: none).
    std::string refuse(int status, unsigned retry_after = 0) {
        status_ = status;
        verdict_ = request_verdict::refused;
        keep_alive_ = false;
        response_ = http_response_bytes(
            status, retry_after ? "Retry-After: " + std::to_string(retry_after) + "\r\n" : std::string(), {});
        return response_;
    }

    /// Bytes read past the upgrade request (frames the client sent at once).
    std::string take_rest() { return std::move(input_); }

    /// After `header`: the request without its body (not read yet).
    http_request header() const {
        http_request r;
        auto const& msg = parser_->get();
        r.method = std::string(msg.method_string());
        r.target = handshake_detail::origin_form({msg.target().data(), msg.target().size()});
        for (auto const& field : msg)
            r.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
        return r;
    }

    /// After `header`: refuses the request with the server's `response`
    /// without reading its body; the connection persists only when it had
    /// none. Returns the bytes to write (also response()).
    std::string const& refuse_request(http_response const& response) {
        done_ = true;
        status_ = response.status;
        verdict_ = request_verdict::refused;
        keep_alive_ = parser_->is_done() && parser_->get().keep_alive();
        response_ = respond(response);
        return response_;
    }

    /// After `http`: the request.
    http_request take_request() {
        auto msg = parser_->release();
        http_request r;
        r.method = std::string(msg.method_string());
        r.target = handshake_detail::origin_form({msg.target().data(), msg.target().size()});
        for (auto const& field : msg)
            r.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
        r.body = std::move(msg.body());
        return r;
    }

    /// After `http`: the bytes of `response` to the request. The framing is
    /// ours: Content-Length, and Connection (plus Keep-Alive) as the
    /// connection goes on; a `Connection: close` from the server ends it.
    /// The response to a HEAD keeps its Content-Length and drops its body.
    std::string respond(http_response const& response) {
        using handshake_detail::iequals;
        std::string headers;
        bool typed = false;
        for (auto const& [name, value] : response.headers) {
            if (iequals(name, "Connection")) {
                if (handshake_detail::has_token(value, "close")) keep_alive_ = false;
                continue;
            }
            if (iequals(name, "Content-Length") || iequals(name, "Transfer-Encoding") || iequals(name, "Keep-Alive") ||
                iequals(name, "Date"))
                continue;
            typed = typed || iequals(name, "Content-Type");
            headers.append(name).append(": ").append(value).append("\r\n");
        }
        return http_response_bytes(response.status, headers, response.body, typed ? "" : "text/plain",
                                   connection_fields(), head_);
    }

    /// After `http` or `refused`: whether the connection goes on with the
    /// next request once the response is written (RFC 9112 §9.3, §9.6).
    bool keep_alive() const { return keep_alive_; }

    /// After the response to a request that kept the connection alive:
    /// starts the next request with the bytes fed past this one (pipelined)
    /// and says what to do, as feed().
    request_verdict next() {
        start_parser();
        header_bytes_ = empty_lines_bytes_ = 0;
        header_checked_ = header_pending_ = upgrade_attempt_ = done_ = keep_alive_ = head_ = started_ = false;
        version_ = 11;
        verdict_ = request_verdict::need_more;
        status_ = 0;
        response_.clear();
        reason_.clear();
        target_.clear();
        origin_.clear();
        key_.clear();
        return feed({});
    }

    /// Whether a byte of the current request arrived (else the connection is idle).
    bool started() const { return started_; }

    /// The request did not arrive whole in time: refused with 408 (RFC 9110
    /// §15.5.9). A connection that sent nothing is closed without it.
    request_verdict timed_out() { return refuse_now(408, "the request did not arrive whole in time"); }

    /// After `refused` or `interim`: the bytes to write.
    std::string const& response() const { return response_; }
    /// After `refused`: the HTTP status.
    int status() const { return status_; }
    /// After a refusal of the handshake's own: why.
    std::string const& reason() const { return reason_; }
    /// Whether the request is a WebSocket upgrade attempt (known once its header is whole).
    bool is_upgrade() const { return upgrade_attempt_; }

private:
    void start_parser() {
        parser_.emplace();
        parser_->header_limit(static_cast<std::uint32_t>(limits_.max_header_bytes));
        // The body bound is checked after the server's header check (a 401
        // comes before a 413), then given to Beast for chunked bodies.
        parser_->body_limit(boost::none);
        parser_->eager(false);  // stop after the header: refusals come before the body is read
    }

    std::optional<request_verdict> check_header() {
        auto const& req = parser_->get();
        namespace http = boost::beast::http;
        auto const upgrade = req.find(http::field::upgrade);
        upgrade_attempt_ = upgrade != req.end() && handshake_detail::has_token(upgrade->value(), "websocket");
        target_ = handshake_detail::origin_form({req.target().data(), req.target().size()});
        // RFC 9112 §3.2: one Host with a valid value, and none missing in
        // HTTP/1.1; checked for upgrades among their own checks, below.
        auto const host = req.find(http::field::host);
        auto const hosts = req.count(http::field::host);
        bool const host_ok = hosts == 1 && handshake_detail::valid_host({host->value().data(), host->value().size()});
        if (!upgrade_attempt_) {
            head_ = req.method() == http::verb::head;
            version_ = req.version();
            if (!host_ok && (hosts > 0 || version_ >= 11))
                return refuse_now(400, "a request needs one Host header with a valid value (RFC 9112 §3.2)");
            // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has
            // faulty framing; refused and the connection closed.
            if (version_ < 11 && req.count(http::field::transfer_encoding) != 0)
                return refuse_now(400, "an HTTP/1.0 request must not have a Transfer-Encoding");
            // Beast reads `gzip, chunked` as chunked and `gzip` as no body
            // at all: a body we would misread (RFC 9112 §6.1: 501).
            std::size_t codings = 0;
            bool chunked_only = true;
            for (auto const& field : req) {
                if (field.name() != http::field::transfer_encoding) continue;
                for (auto const& t : http::token_list(field.value())) {
                    ++codings;
                    chunked_only = chunked_only && handshake_detail::iequals({t.data(), t.size()}, "chunked");
                }
                if (field.value().empty()) {
                    ++codings;
                    chunked_only = false;
                }
            }
            if (codings > 1 || !chunked_only) return refuse_now(501, "only the chunked transfer coding is supported");
            header_pending_ = true;
            return request_verdict::header;
        }
        if (!path_matches(*path_, target_)) return refuse_now(404, "no WebSocket is served at this path");
        if (req.method() != http::verb::get) return refuse_now(400, "a WebSocket upgrade must be a GET");
        if (req.version() != 11) return refuse_now(400, "a WebSocket upgrade must be HTTP/1.1");
        if (!host_ok) return refuse_now(400, "a WebSocket upgrade needs one Host header with a valid value");
        auto const connection = req.find(http::field::connection);
        if (connection == req.end() || !handshake_detail::has_token(connection->value(), "upgrade"))
            return refuse_now(400, "a WebSocket upgrade needs `Connection: Upgrade`");
        if (req.has_content_length() || req.chunked()) return refuse_now(400, "a WebSocket upgrade has no body");
        auto const version = req.find(http::field::sec_websocket_version);
        if (req.count(http::field::sec_websocket_version) != 1 || version->value() != "13")
            return refuse_now(426, "only WebSocket version 13 is supported", "Sec-WebSocket-Version: 13\r\n");
        auto const key = req.find(http::field::sec_websocket_key);
        if (req.count(http::field::sec_websocket_key) != 1 ||
            !is_websocket_key({key->value().data(), key->value().size()}))
            return refuse_now(400, "Sec-WebSocket-Key must be the base64 of 16 bytes");
        key_ = std::string(key->value());
        if (auto const origin = req.find(http::field::origin); origin != req.end())
            origin_ = std::string(origin->value());
        done_ = true;
        verdict_ = request_verdict::upgrade;
        return verdict_;
    }

    /// The rest of a plain request's header checks, once the server let it through.
    std::optional<request_verdict> after_header_check() {
        namespace http = boost::beast::http;
        if (auto const length = parser_->content_length(); length && *length > limits_.max_body_bytes)
            return refuse_now(413, "request body too large");
        parser_->body_limit(static_cast<std::uint64_t>(limits_.max_body_bytes));
        auto const& req = parser_->get();
        auto const expect = req.find(http::field::expect);
        // RFC 9110 §10.1.1: a 100-continue in an HTTP/1.0 request is ignored
        // (and §15.2: no 1xx to an HTTP/1.0 client).
        if (!parser_->is_done() && version_ >= 11 && expect != req.end() &&
            handshake_detail::iequals({expect->value().data(), expect->value().size()}, "100-continue")) {
            response_ = "HTTP/1.1 100 Continue\r\n\r\n";
            return request_verdict::interim;
        }
        return std::nullopt;
    }

    /// Connection and Keep-Alive of a response, as the connection goes on.
    std::string connection_fields() const {
        if (!keep_alive_) return "Connection: close\r\n";
        auto const seconds = std::chrono::duration_cast<std::chrono::seconds>(limits_.idle_timeout).count();
        std::string out = version_ == 10 ? "Connection: keep-alive\r\n" : "";  // HTTP/1.0 persists only when told
        return out + "Keep-Alive: timeout=" + std::to_string(seconds > 0 ? seconds : 1) + "\r\n";
    }

    request_verdict refuse_now(int status, std::string reason, std::string_view headers = {}) {
        done_ = true;
        status_ = status;
        verdict_ = request_verdict::refused;
        keep_alive_ = false;
        response_ = http_response_bytes(status, headers, reason + "\n", "text/plain", "Connection: close\r\n",
                                        head_ && !upgrade_attempt_);
        if (target_.empty() && parser_->is_header_done()) target_ = std::string(parser_->get().target());
        reason_ = std::move(reason);
        return verdict_;
    }

    std::optional<std::string> const* path_;
    request_limits limits_;
    std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
    std::string input_;                  // bytes fed and not yet taken by the parser
    std::size_t header_bytes_ = 0;       // header bytes the parser took
    std::size_t empty_lines_bytes_ = 0;  // CRLFs skipped before the request line
    bool header_checked_ = false;
    bool header_pending_ = false;  // `header` returned: the server's check runs before the next feed
    bool upgrade_attempt_ = false;
    bool done_ = false;
    bool keep_alive_ = false;
    bool head_ = false;     // a HEAD: responses carry no body
    bool started_ = false;  // a byte of this request arrived
    unsigned version_ = 11;
    request_verdict verdict_ = request_verdict::need_more;
    int status_ = 0;
    std::string response_;
    std::string reason_;
    std::string target_;
    std::string origin_;
    std::string key_;
};

}  // namespace mesa::transport::detail
