#pragma once
// Test-side peers for the socket integration tests: a WebSocket client
// (websocketpp's asio client) and a raw HTTP/1.1 client, both running on the
// test's own io_context, the one the server under test runs on. Nothing here
// blocks or sleeps: a test starts an operation, then drives the io_context with
// wait_until() until what it expects happened or a deadline passed, so a
// broken server makes the test fail instead of hanging.
#include <cstddef>  // before Asio: see <mesa/detail/config.hpp>

#include <websocketpp/client.hpp>
#include <websocketpp/config/asio_no_tls_client.hpp>

#include <asio/connect.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace mesa_test {

using namespace std::chrono_literals;

/// Runs handlers of `ioc` until `done()` is true (returns true) or `timeout`
/// passed (returns false). A work guard keeps run_one_for waiting for the next
/// handler instead of returning at once when nothing is pending.
template <class Predicate>
bool wait_until(asio::io_context& ioc, Predicate&& done, std::chrono::milliseconds timeout = 3000ms) {
    auto const deadline = std::chrono::steady_clock::now() + timeout;
    auto guard = asio::make_work_guard(ioc);
    if (ioc.stopped()) ioc.restart();
    while (!done()) {
        auto const now = std::chrono::steady_clock::now();
        if (now >= deadline) return false;
        ioc.run_one_for(deadline - now);
        if (ioc.stopped()) ioc.restart();
    }
    return true;
}

/// Runs handlers of `ioc` for `duration` (for "nothing happens meanwhile" checks).
inline void run_for(asio::io_context& ioc, std::chrono::milliseconds duration) {
    wait_until(
        ioc, [] { return false; }, duration);
}

/// One WebSocket connection to ws://127.0.0.1:port/path.
class ws_client {
public:
    using endpoint_type = websocketpp::client<websocketpp::config::asio_client>;
    using connection_ptr = endpoint_type::connection_ptr;

    explicit ws_client(asio::io_context& ioc) : ioc_(ioc) {
        endpoint_.clear_access_channels(websocketpp::log::alevel::all);
        endpoint_.clear_error_channels(websocketpp::log::elevel::all);
        endpoint_.init_asio(&ioc);
    }
    ws_client(ws_client const&) = delete;
    ws_client& operator=(ws_client const&) = delete;

    /// Closes an open connection (1000) and waits briefly for the handshake,
    /// then detaches the handlers so nothing later calls into a dead object.
    ~ws_client() {
        if (!con_) return;
        websocketpp::lib::error_code ec;
        if (opened && !closed) {
            con_->close(websocketpp::close::status::normal, "test over", ec);
            wait_until(
                ioc_, [&] { return closed; }, 1000ms);
        } else if (!opened && !failed) {
            con_->terminate(ec);
            wait_until(
                ioc_, [&] { return closed || failed; }, 1000ms);
        }
        con_->set_open_handler(nullptr);
        con_->set_fail_handler(nullptr);
        con_->set_close_handler(nullptr);
        con_->set_message_handler(nullptr);
    }

    /// Starts the opening handshake; see wait_open() / connect_and_wait().
    void connect(std::uint16_t port, std::string const& path = "/") {
        websocketpp::lib::error_code ec;
        con_ = endpoint_.get_connection("ws://127.0.0.1:" + std::to_string(port) + path, ec);
        if (ec) {
            failed = true;
            fail_reason = ec.message();
            return;
        }
        con_->set_open_handler([this](websocketpp::connection_hdl) { opened = true; });
        con_->set_fail_handler([this](websocketpp::connection_hdl) {
            failed = true;
            http_status = static_cast<int>(con_->get_response_code());
            fail_reason = con_->get_ec().message();
        });
        con_->set_close_handler([this](websocketpp::connection_hdl) {
            closed = true;
            close_code = con_->get_remote_close_code();
            close_reason = con_->get_remote_close_reason();
            closed_at = std::chrono::steady_clock::now();
        });
        con_->set_message_handler([this](websocketpp::connection_hdl, endpoint_type::message_ptr msg) {
            if (msg->get_opcode() == websocketpp::frame::opcode::text) {
                texts.push_back(msg->get_payload());
                if (on_text) on_text(texts.back());
            } else {
                ++binary_frames;
            }
        });
        started_at = std::chrono::steady_clock::now();
        endpoint_.connect(con_);
    }

    /// Waits until the handshake succeeded (true) or failed / timed out (false).
    bool wait_open(std::chrono::milliseconds timeout = 3000ms) {
        wait_until(
            ioc_, [&] { return opened || failed || closed; }, timeout);
        return opened && !closed;
    }

    bool connect_and_wait(std::uint16_t port, std::string const& path = "/",
                          std::chrono::milliseconds timeout = 3000ms) {
        connect(port, path);
        return wait_open(timeout);
    }

    /// Waits until the handshake fails (true: e.g. refused with an HTTP status).
    bool wait_failed(std::chrono::milliseconds timeout = 3000ms) {
        wait_until(
            ioc_, [&] { return opened || failed || closed; }, timeout);
        return failed;
    }

    void send_text(std::string const& payload) { send(payload, websocketpp::frame::opcode::text); }
    void send_binary(std::string const& payload) { send(payload, websocketpp::frame::opcode::binary); }

    /// Starts the closing handshake with `code`.
    void close(std::uint16_t code, std::string const& reason = {}) {
        websocketpp::lib::error_code ec;
        if (con_) con_->close(code, reason, ec);
        if (ec) send_errors.push_back(ec.message());
    }

    /// Waits until at least `n` text frames arrived.
    bool wait_texts(std::size_t n, std::chrono::milliseconds timeout = 3000ms) {
        return wait_until(
            ioc_, [&] { return texts.size() >= n; }, timeout);
    }

    /// Waits until the connection is closed.
    bool wait_closed(std::chrono::milliseconds timeout = 3000ms) {
        return wait_until(
            ioc_, [&] { return closed || failed; }, timeout);
    }

    bool is_open() const { return opened && !closed && !failed; }

    // What happened, for the test to assert on.
    bool opened = false;
    bool failed = false;  // the handshake did not complete
    int http_status = 0;  // status of a refused handshake (0: no response)
    std::string fail_reason;
    bool closed = false;           // an open connection ended
    std::uint16_t close_code = 0;  // code the server sent (1006: none)
    std::string close_reason;
    std::vector<std::string> texts;  // every text frame received, in order
    std::size_t binary_frames = 0;
    std::vector<std::string> send_errors;
    std::chrono::steady_clock::time_point started_at{};
    std::chrono::steady_clock::time_point closed_at{};
    /// Called with each text frame as it arrives (e.g. to answer heartbeats).
    std::function<void(std::string const&)> on_text;

private:
    void send(std::string const& payload, websocketpp::frame::opcode::value op) {
        websocketpp::lib::error_code ec;
        if (con_) ec = con_->send(payload, op);
        if (ec) send_errors.push_back(ec.message());
    }

    asio::io_context& ioc_;
    endpoint_type endpoint_;
    connection_ptr con_;
};

/// One raw HTTP/1.1 exchange with 127.0.0.1:port: writes `request` as is and
/// reads the answer until the server closes the connection.
class raw_http {
public:
    explicit raw_http(asio::io_context& ioc) : ioc_(ioc), socket_(ioc) {}
    raw_http(raw_http const&) = delete;
    raw_http& operator=(raw_http const&) = delete;
    /// Aborts an unfinished exchange and lets its handlers run before dying.
    ~raw_http() {
        if (!started_ || done) return;
        std::error_code ignored;
        socket_.close(ignored);
        wait_until(
            ioc_, [&] { return done; }, 1000ms);
    }

    void start(std::uint16_t port, std::string request) {
        started_ = true;
        request_ = std::move(request);
        asio::ip::tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
        socket_.async_connect(ep, [this](std::error_code ec) {
            if (ec) return finish(ec);
            asio::async_write(socket_, asio::buffer(request_), [this](std::error_code ec, std::size_t) {
                if (ec) return finish(ec);
                read_more();
            });
        });
    }

    bool done = false;
    std::error_code error;  // asio::error::eof is the normal end
    std::string response;   // everything received

    /// Status code of the response line, 0 when there is none.
    int status() const {
        auto sp = response.find(' ');
        if (response.rfind("HTTP/1.", 0) != 0 || sp == std::string::npos) return 0;
        return std::atoi(response.c_str() + sp + 1);
    }
    std::string body() const {
        auto end = response.find("\r\n\r\n");
        return end == std::string::npos ? std::string() : response.substr(end + 4);
    }
    std::string headers() const { return response.substr(0, response.find("\r\n\r\n")); }

private:
    void read_more() {
        socket_.async_read_some(asio::buffer(buffer_), [this](std::error_code ec, std::size_t n) {
            response.append(buffer_, n);
            if (ec) return finish(ec);
            read_more();
        });
    }
    void finish(std::error_code ec) {
        error = ec;
        done = true;
        std::error_code ignored;
        socket_.close(ignored);
    }

    asio::io_context& ioc_;
    asio::ip::tcp::socket socket_;
    bool started_ = false;
    std::string request_;
    char buffer_[4096];
};

}  // namespace mesa_test
