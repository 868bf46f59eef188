#pragma once
// The admin listener (MESA_ADMIN_PORT): a small HTTP/1.1 server for
// /metrics, /health and /ready, away from the public port. One request per
// connection: every response has Content-Length and Connection: close.
// Bounded: requests larger than 8 KiB get 431, more than 64 connections at
// once are closed at accept, and a client has 5 s to send its request.
//
//   gateway::admin_listener admin{ioc, "127.0.0.1", 9100,
//                                 [](mesa::http_request const& r) { return mesa::http_response{200, {}, "ok"}; }};
//   admin.start();  // throws std::system_error when it cannot bind
//
// Thread-safety: everything runs on the io_context's (single) thread.
#include <cstddef>  // before Asio: see <mesa/detail/config.hpp>

#include <asio/ip/tcp.hpp>
#include <asio/read_until.hpp>
#include <asio/steady_timer.hpp>
#include <asio/streambuf.hpp>
#include <asio/write.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <istream>
#include <memory>
#include <string>
#include <utility>

#include <mesa/http.hpp>

namespace gateway {

class admin_listener {
public:
    using handler = std::function<mesa::http_response(mesa::http_request const&)>;

    static constexpr std::size_t max_request_bytes = 8192;
    static constexpr std::size_t max_connections = 64;
    static constexpr std::chrono::seconds request_timeout{5};

    admin_listener(asio::io_context& ioc, std::string host, std::uint16_t port, handler h)
        : ioc_(ioc), host_(std::move(host)), port_(port), handler_(std::move(h)), acceptor_(ioc) {}

    /// Binds and starts accepting; throws std::system_error when it cannot.
    void start() {
        asio::ip::tcp::endpoint endpoint(asio::ip::make_address(host_), port_);
        acceptor_.open(endpoint.protocol());
        acceptor_.set_option(asio::ip::tcp::acceptor::reuse_address(true));
        acceptor_.bind(endpoint);
        acceptor_.listen();
        accept();
    }

    std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

    void stop() {
        std::error_code ignored;
        acceptor_.close(ignored);
    }

private:
    struct session : std::enable_shared_from_this<session> {
        explicit session(admin_listener& owner, asio::ip::tcp::socket s)
            : owner(owner), open(owner.open_), socket(std::move(s)), timer(owner.ioc_), buffer(max_request_bytes) {}
        ~session() { --*open; }  // may run after the listener is gone, when the io_context is destroyed

        admin_listener& owner;
        std::shared_ptr<std::size_t> open;
        asio::ip::tcp::socket socket;
        asio::steady_timer timer;
        asio::streambuf buffer;
        std::string out;

        void run() {
            timer.expires_after(request_timeout);
            timer.async_wait([self = shared_from_this()](std::error_code ec) {
                if (!ec) self->close();
            });
            asio::async_read_until(socket, buffer, "\r\n\r\n",
                                   [self = shared_from_this()](std::error_code ec, std::size_t) { self->read(ec); });
        }

        void read(std::error_code ec) {
            if (ec == asio::error::not_found) return respond({431, {}, "request header too large\n"});
            if (ec) return close();
            std::istream in(&buffer);
            mesa::http_request req;
            std::string version;
            in >> req.method >> req.target >> version;
            if (req.method.empty() || req.target.empty() || version.rfind("HTTP/1.", 0) != 0)
                return respond({400, {}, "bad request\n"});
            std::string line;
            std::getline(in, line);
            while (std::getline(in, line) && line != "\r" && !line.empty()) {
                auto const colon = line.find(':');
                if (colon == std::string::npos) continue;
                auto value = line.substr(colon + 1);
                while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.erase(0, 1);
                while (!value.empty() && (value.back() == '\r' || value.back() == ' ')) value.pop_back();
                req.headers.emplace_back(line.substr(0, colon), std::move(value));
            }
            respond(owner.handler_(req), req.method == "HEAD");
        }

        /// `head`: the answer to a HEAD, without its body (RFC 9110 §9.3.2).
        void respond(mesa::http_response res, bool head = false) {
            out = "HTTP/1.1 " + std::to_string(res.status) + " " + reason(res.status) + "\r\n";
            bool typed = false;
            for (auto const& [k, v] : res.headers) {
                out += k + ": " + v + "\r\n";
                typed = typed || k == "Content-Type";
            }
            if (!typed) out += "Content-Type: text/plain; charset=utf-8\r\n";
            out += "Content-Length: " + std::to_string(res.body.size()) + "\r\nConnection: close\r\n\r\n";
            if (!head) out += res.body;
            asio::async_write(socket, asio::buffer(out), [self = shared_from_this()](std::error_code, std::size_t) {
                std::error_code ignored;
                self->socket.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
                self->close();
            });
        }

        void close() {
            std::error_code ignored;
            timer.cancel();
            socket.close(ignored);
        }

        static char const* reason(int status) {
            switch (status) {
                case 200:
                    return "OK";
                case 400:
                    return "Bad Request";
                case 404:
                    return "Not Found";
                case 405:
                    return "Method Not Allowed";
                case 431:
                    return "Request Header Fields Too Large";
                case 503:
                    return "Service Unavailable";
                default:
                    return "Status";
            }
        }
    };

    void accept() {
        acceptor_.async_accept([this](std::error_code ec, asio::ip::tcp::socket socket) {
            if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
            if (!ec) {
                if (*open_ >= max_connections) {
                    std::error_code ignored;
                    socket.close(ignored);
                } else {
                    ++*open_;
                    std::make_shared<session>(*this, std::move(socket))->run();
                }
            }
            accept();
        });
    }

    asio::io_context& ioc_;
    std::string host_;
    std::uint16_t port_;
    handler handler_;
    asio::ip::tcp::acceptor acceptor_;
    std::shared_ptr<std::size_t> open_ = std::make_shared<std::size_t>(0);
};

}  // namespace gateway
