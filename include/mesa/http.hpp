#pragma once
// Plain HTTP requests served on the WebSocket port (health checks, an API):
// the C++ counterpart of handing the reference an existing HTTP server.
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mesa {

struct http_request {
    std::string method;
    std::string target;  // path and query, as sent
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;

    /// The value of header `name` (case-insensitive), if present.
    std::optional<std::string> header(std::string const& name) const {
        auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; };
        for (auto const& [k, v] : headers) {
            if (k.size() != name.size()) continue;
            bool same = true;
            for (std::size_t i = 0; i < k.size() && same; ++i) same = lower(k[i]) == lower(name[i]);
            if (same) return v;
        }
        return std::nullopt;
    }
};

struct http_response {
    int status = 200;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
};

/// Sends the response to one request: call it once, now or later, on the
/// server's thread (until it is called the client waits, and its connection
/// is held).
using http_responder = std::function<void(http_response)>;

/// Answers a plain HTTP request through `respond`; without a handler every
/// such request gets 426.
///
///   server.on_http([](mesa::http_request const& req, mesa::http_responder respond) {
///       respond({200, {{"Content-Type", "text/plain"}}, "ok\n"});
///   });
using http_handler = std::function<void(http_request const&, http_responder respond)>;

/// Looks at a plain HTTP request once its header section is whole (`header`
/// has no body yet): nullopt lets it go on to the http handler, a response
/// refuses it at once. On transports that can (transport::asio_plain) this
/// runs before the body is read, and a refused request's body is never read
/// (the connection then closes, unless the request had no body); the others
/// read the whole request first and run it just before the http handler.
/// Runs on the server's thread and must answer at once.
///
///   server.on_http_header([](mesa::http_request const& header) -> std::optional<mesa::http_response> {
///       if (!header.header("Authorization")) return mesa::http_response{401, {}, "who are you?\n"};
///       return std::nullopt;
///   });
using http_header_handler = std::function<std::optional<http_response>(http_request const& header)>;

}  // namespace mesa
