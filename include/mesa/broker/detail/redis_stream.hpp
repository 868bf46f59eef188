#pragma once
// The byte stream under one Redis connection attempt: a plain socket (TCP or
// unix) here, TLS in <mesa/broker/redis_tls.hpp>, so that a plain-TCP Redis
// user needs no OpenSSL. The connection connects socket(), then runs
// async_handshake, then reads and writes through the stream; one stream per
// attempt (a TLS session cannot be reused after a failure).
//
// A stream stays alive while one of its operations is pending (each holds a
// shared_ptr to it), so the connection may drop it at any time.
//
// Thread-safety: a stream belongs to its connection's executor; a factory is
// immutable once made and may be shared across threads.
#include <mesa/detail/config.hpp>  // first: the macros Asio and websocketpp need

#include <asio/any_io_executor.hpp>
#include <asio/buffer.hpp>
#include <asio/generic/stream_protocol.hpp>
#include <asio/write.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <system_error>

namespace mesa::broker::detail {

class redis_stream {
public:
    using socket_type = asio::generic::stream_protocol::socket;
    using io_handler = std::function<void(std::error_code, std::size_t)>;
    using handshake_handler = std::function<void(std::error_code)>;

    virtual ~redis_stream() = default;

    /// The socket the owner connects (and closes to abort everything).
    virtual socket_type& socket() noexcept = 0;
    /// Once socket() is connected to `host` (the name or address in the
    /// configuration, or the address a sentinel reported): the TLS handshake.
    /// The plain stream completes at once, inline.
    virtual void async_handshake(std::string const& host, handshake_handler done) = 0;
    virtual void async_read_some(asio::mutable_buffer buffer, io_handler done) = 0;
    /// Writes the whole buffer (which must outlive the operation).
    virtual void async_write(asio::const_buffer buffer, io_handler done) = 0;
    /// Why an operation of this stream failed with `ec`, in words for the log
    /// (the TLS stream names the certificate problem).
    virtual std::string explain(std::error_code ec) const { return ec.message(); }
};

/// Makes the stream of each connection attempt: broker::redis::options::tls
/// holds one (mesa::broker::redis_tls()); none means plain sockets.
class redis_stream_factory {
public:
    virtual ~redis_stream_factory() = default;
    virtual std::shared_ptr<redis_stream> make(asio::any_io_executor executor) const = 0;
    /// False when the peer's certificate is not checked (logged as a warning).
    virtual bool verifies_peer() const noexcept = 0;
};

/// A socket, as is.
class redis_plain_stream final : public redis_stream, public std::enable_shared_from_this<redis_plain_stream> {
public:
    explicit redis_plain_stream(asio::any_io_executor executor) : socket_(executor) {}

    socket_type& socket() noexcept override { return socket_; }
    void async_handshake(std::string const&, handshake_handler done) override { done({}); }
    void async_read_some(asio::mutable_buffer buffer, io_handler done) override {
        socket_.async_read_some(buffer, [self = shared_from_this(), done = std::move(done)](
                                            std::error_code ec, std::size_t n) { done(ec, n); });
    }
    void async_write(asio::const_buffer buffer, io_handler done) override {
        asio::async_write(
            socket_, buffer,
            [self = shared_from_this(), done = std::move(done)](std::error_code ec, std::size_t n) { done(ec, n); });
    }

private:
    socket_type socket_;
};

}  // namespace mesa::broker::detail
