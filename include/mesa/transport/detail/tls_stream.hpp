#pragma once
// The stream policy of asio_tls: OpenSSL driven directly on the connection's
// non-blocking socket (no asio::ssl::stream, whose two 17 KiB buffers stay
// with every stream), so that an idle connection holds its TLS session state
// and nothing else:
// - SSL_MODE_RELEASE_BUFFERS: OpenSSL frees its record buffers whenever they
//   are empty, which they are between reads and after a whole write;
// - reads decrypt into the transport's shared read buffer until OpenSSL
//   wants more bytes from the socket (SSL_ERROR_WANT_READ: the socket is
//   drained), so nothing is left in OpenSSL's buffers to wake nobody;
// - writes are cut into records of up to 16 KiB: the small pieces of a queue
//   (frame headers, small frames) gathered in one buffer shared by the
//   transport's connections, a large piece written in place. A write that
//   blocks must be retried with the same bytes (SSL_write(3)): a gathered one
//   is copied to the connection until it is written, then freed.
// Bytes cross the socket through a BIO of ours (send with MSG_NOSIGNAL: a
// peer gone never raises SIGPIPE). A peer whose first bytes are a plain HTTP
// request, not a ClientHello, is answered in clear (stream_step::plain_http):
// the stream then passes bytes through as they are, as nginx answers 400 on
// its HTTPS ports.
#include <mesa/detail/config.hpp>  // first: the macros Asio and websocketpp need

#include <asio/buffer.hpp>
#include <asio/error.hpp>
#include <asio/post.hpp>
#include <asio/write.hpp>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <mesa/transport/asio.hpp>  // detail::stream_step
#include <mesa/transport/detail/tls_context.hpp>

namespace mesa::transport::detail {

namespace tls_stream_detail {

inline int socket_of(BIO* b) { return static_cast<int>(reinterpret_cast<std::intptr_t>(BIO_get_data(b))); }

inline int bio_write(BIO* b, char const* data, int size) {
    BIO_clear_retry_flags(b);
    ssize_t const n = ::send(socket_of(b), data, static_cast<std::size_t>(size), MSG_NOSIGNAL);
    if (n >= 0) return static_cast<int>(n);
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) BIO_set_retry_write(b);
    return -1;
}

inline int bio_read(BIO* b, char* data, int size) {
    BIO_clear_retry_flags(b);
    ssize_t const n = ::recv(socket_of(b), data, static_cast<std::size_t>(size), 0);
    if (n >= 0) return static_cast<int>(n);  // 0: the peer's end of file
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) BIO_set_retry_read(b);
    return -1;
}

inline long bio_ctrl(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }

/// The BIO method over a non-blocking socket descriptor, made once per process.
inline BIO_METHOD const* socket_bio() {
    static BIO_METHOD* const method = [] {
        BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "mesa socket");
        if (m) {
            BIO_meth_set_write(m, bio_write);
            BIO_meth_set_read(m, bio_read);
            BIO_meth_set_ctrl(m, bio_ctrl);
        }
        return m;
    }();
    return method;
}

/// Why the last OpenSSL call failed with SSL_get_error `error`, in words.
inline std::string failure(int error) {
    unsigned long const code = ERR_peek_last_error();
    if (code == 0) {
        if (error == SSL_ERROR_SYSCALL && errno != 0) return std::strerror(errno);
        return "the peer closed the connection";
    }
    char const* reason = ERR_reason_error_string(code);
    return reason ? reason : "TLS error " + std::to_string(code);
}

/// What the first bytes a client sent (peeked, not read) say it speaks.
enum class first_bytes : std::uint8_t { none_yet, closed, plain_http, plain_head, tls };

/// A TLS connection begins with a handshake record (0x16); an HTTP request
/// with a method token, after optional empty lines (RFC 9112 §2.2). Any
/// letter there is taken for HTTP, so every method is (DELETE, get, ...);
/// anything else is left to OpenSSL.
inline first_bytes peek_first_bytes(int descriptor) {
    char head[16];
    ssize_t const n = ::recv(descriptor, head, sizeof head, MSG_PEEK);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? first_bytes::none_yet : first_bytes::closed;
    if (n == 0) return first_bytes::closed;
    std::string_view bytes(head, static_cast<std::size_t>(n));
    bytes.remove_prefix(std::min(bytes.find_first_not_of("\r\n"), bytes.size()));
    if (bytes.empty()) return first_bytes::plain_http;  // empty lines only, so far
    char const c = bytes.front();
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))) return first_bytes::tls;
    return bytes.substr(0, 5) == "HEAD " ? first_bytes::plain_head : first_bytes::plain_http;
}

}  // namespace tls_stream_detail

/// The TLS stream policy of basic_asio (asio_tls): one per connection, its
/// SSL session; see the top of this header. `Options` derives from tls_files.
template <class Options>
class tls_stream {
public:
    using options = Options;
    static constexpr char const* scheme = "wss";
    static constexpr bool handshakes = true;  // the TLS handshake, before the HTTP request

    /// What the connections of a transport share: the server context and the
    /// buffer writes gather small pieces in (they run on one thread).
    struct context {
        std::shared_ptr<asio::ssl::context> ssl;
        std::unique_ptr<char[]> record;

        void load(options const& o) {
            ssl = make_tls_context(o);
            SSL_CTX_set_options(ssl->native_handle(), SSL_OP_NO_RENEGOTIATION);
            record = std::make_unique<char[]>(record_size);
        }
    };

    explicit tls_stream(context& c) : context_(&c) {}
    tls_stream(tls_stream const&) = delete;
    tls_stream& operator=(tls_stream const&) = delete;
    ~tls_stream() { release(); }

    /// One step of the server's TLS handshake on `socket`; `failure` says why
    /// it failed, empty when the peer left without sending a byte.
    template <class Socket>
    stream_step handshake(Socket& socket, std::string& failure) {
        if (!ssl_) {
            // Before TLS begins: a plain HTTP request gets an answer in clear.
            switch (tls_stream_detail::peek_first_bytes(socket.native_handle())) {
                case tls_stream_detail::first_bytes::none_yet:
                    return stream_step::want_read;
                case tls_stream_detail::first_bytes::closed:
                    return stream_step::failed;  // left without a word: nothing to report
                case tls_stream_detail::first_bytes::plain_head:
                    plain_head_ = true;
                    [[fallthrough]];
                case tls_stream_detail::first_bytes::plain_http:
                    clear_ = true;
                    return stream_step::plain_http;
                case tls_stream_detail::first_bytes::tls:
                    break;
            }
        }
        if (!ssl_ && !create(socket.native_handle())) {
            failure = "cannot create a TLS session: " + tls_stream_detail::failure(SSL_ERROR_SSL);
            return stream_step::failed;
        }
        ERR_clear_error();
        errno = 0;
        int const r = SSL_do_handshake(ssl_);
        if (r == 1) {
            established_ = true;
            want_write_ = false;
            return stream_step::done;
        }
        int const e = SSL_get_error(ssl_, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            want_write_ = e == SSL_ERROR_WANT_WRITE;
            return want_write_ ? stream_step::want_write : stream_step::want_read;
        }
        broken_ = true;
        if (BIO_number_read(SSL_get_rbio(ssl_)) != 0)
            failure = "TLS handshake failed: " + tls_stream_detail::failure(e);
        return stream_step::failed;
    }

    /// Decrypts into `buffer` until it is full or the socket is drained;
    /// asio::error::would_block when nothing came. An error after some bytes
    /// is returned by the next call.
    template <class Socket>
    std::size_t read_some(Socket& socket, asio::mutable_buffer buffer, std::error_code& ec) {
        if (clear_) {
            std::size_t const n = socket.read_some(buffer, ec);
            drained_ = n < buffer.size();
            return n;
        }
        if (deferred_ || !ssl_) {
            ec = ssl_ ? std::exchange(deferred_, {}) : std::error_code(asio::error::bad_descriptor);
            return 0;
        }
        drained_ = false;
        auto* const data = static_cast<char*>(buffer.data());
        std::size_t n = 0;
        while (n < buffer.size()) {
            ERR_clear_error();
            errno = 0;
            int const r = SSL_read(ssl_, data + n, static_cast<int>(std::min<std::size_t>(buffer.size() - n, INT_MAX)));
            if (r > 0) {
                n += static_cast<std::size_t>(r);
                continue;
            }
            int const e = SSL_get_error(ssl_, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                want_write_ = e == SSL_ERROR_WANT_WRITE;
                drained_ = true;
                break;
            }
            std::error_code const error = stopped(e);
            if (n == 0) {
                ec = error;
                return 0;
            }
            deferred_ = error;
            break;
        }
        if (n == 0 && drained_) ec = asio::error::would_block;
        return n;
    }

    /// After stream_step::plain_http: whether the request is a HEAD (its
    /// answer has no body, RFC 9110 §9.3.2).
    bool plain_head() const { return plain_head_; }

    /// True when the last read stopped because the socket had no more bytes.
    bool drained(std::size_t, std::size_t) const { return drained_; }

    /// What the socket must become before the next read (or handshake) step.
    template <class Socket>
    typename Socket::wait_type read_wait() const {
        return want_write_ ? Socket::wait_write : Socket::wait_read;
    }

    /// Encrypts and writes all of `buffers` (they stay valid until `handler`
    /// runs), then posts handler(error, bytes of `buffers` written).
    template <class Socket, class Handler>
    void async_write(Socket& socket, std::vector<asio::const_buffer> buffers, Handler&& handler) {
        if (clear_) return asio::async_write(socket, std::move(buffers), std::forward<Handler>(handler));
        write_op<Socket, std::decay_t<Handler>>{this, &socket, std::move(buffers), std::forward<Handler>(handler)}({});
    }

    /// Sends the close_notify alert once, if the socket takes it now.
    void notify_close() {
        if (!ssl_ || !established_ || broken_ || notified_) return;
        notified_ = true;
        ERR_clear_error();
        SSL_shutdown(ssl_);
    }

    /// Frees the session; the stream reads and writes nothing after this.
    void release() {
        if (ssl_) SSL_free(ssl_);
        ssl_ = nullptr;
        std::string().swap(pending_);
    }

private:
    static constexpr std::size_t record_size = SSL3_RT_MAX_PLAIN_LENGTH;  // 16 KiB

    bool create(int descriptor) {
        ssl_ = SSL_new(context_->ssl->native_handle());
        if (!ssl_) return false;
        BIO* bio = BIO_new(tls_stream_detail::socket_bio());
        if (!bio) {
            release();
            return false;
        }
        BIO_set_data(bio, reinterpret_cast<void*>(static_cast<std::intptr_t>(descriptor)));
        BIO_set_init(bio, 1);
        SSL_set_bio(ssl_, bio, bio);
        SSL_set_mode(ssl_,
                     SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        SSL_set_accept_state(ssl_);
        return true;
    }

    /// The error a failed read or write `e` ends the connection with.
    std::error_code stopped(int e) {
        if (e == SSL_ERROR_ZERO_RETURN) return asio::error::eof;  // the peer's close_notify
        broken_ = true;  // no close_notify after a fatal error (SSL_shutdown(3))
        return e == SSL_ERROR_SYSCALL ? std::error_code(asio::error::connection_reset)
                                      : std::error_code(asio::error::connection_aborted);
    }

    /// Writes the buffers record by record, waiting for the socket when it is full.
    template <class Socket, class Handler>
    struct write_op {
        tls_stream* stream;
        Socket* socket;
        std::vector<asio::const_buffer> buffers;
        Handler handler;
        std::size_t index = 0, offset = 0, written = 0;

        void operator()(std::error_code ec) {
            if (!ec && !stream->ssl_) ec = asio::error::operation_aborted;
            advance(0);  // past empty buffers
            while (!ec && index < buffers.size()) {
                char const* data = nullptr;
                std::size_t size = 0;
                bool gathered = false;
                if (!stream->pending_.empty()) {
                    data = stream->pending_.data();
                    size = stream->pending_.size();
                } else {
                    auto const& b = buffers[index];
                    std::size_t const left = b.size() - offset;
                    if (left >= record_size || index + 1 == buffers.size()) {
                        data = static_cast<char const*>(b.data()) + offset;  // in place: it stays valid
                        size = std::min<std::size_t>(left, INT_MAX);
                    } else {
                        data = stream->context_->record.get();
                        size = gather();
                        gathered = true;
                    }
                }
                ERR_clear_error();
                errno = 0;
                int const r = SSL_write(stream->ssl_, data, static_cast<int>(size));
                if (r > 0) {
                    std::string().swap(stream->pending_);
                    advance(static_cast<std::size_t>(r));
                    continue;
                }
                int const e = SSL_get_error(stream->ssl_, r);
                if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
                    // The retry must offer the same bytes; the shared buffer will not hold them.
                    if (gathered) stream->pending_.assign(data, size);
                    auto const wait = e == SSL_ERROR_WANT_WRITE ? Socket::wait_write : Socket::wait_read;
                    return socket->async_wait(wait, std::move(*this));
                }
                ec = stream->stopped(e);
            }
            asio::post(socket->get_executor(), [h = std::move(handler), ec, n = written]() mutable { h(ec, n); });
        }

        /// Copies the next bytes of `buffers` into the shared record buffer.
        std::size_t gather() const {
            char* const out = stream->context_->record.get();
            std::size_t size = 0, i = index, at = offset;
            while (size < record_size && i < buffers.size()) {
                std::size_t const n = std::min(buffers[i].size() - at, record_size - size);
                std::memcpy(out + size, static_cast<char const*>(buffers[i].data()) + at, n);
                size += n;
                at += n;
                if (at == buffers[i].size()) ++i, at = 0;
            }
            return size;
        }

        void advance(std::size_t n) {
            written += n;
            while (n > 0 && index < buffers.size()) {
                std::size_t const step = std::min(buffers[index].size() - offset, n);
                n -= step;
                offset += step;
                if (offset == buffers[index].size()) ++index, offset = 0;
            }
            while (index < buffers.size() && buffers[index].size() == 0) ++index;
        }
    };

    context* context_;
    SSL* ssl_ = nullptr;
    std::string pending_;  // a gathered chunk SSL_write must be offered again
    std::error_code deferred_;
    bool established_ = false;
    bool broken_ = false;
    bool notified_ = false;
    bool want_write_ = false;
    bool drained_ = false;
    bool clear_ = false;  // after stream_step::plain_http: bytes as they are
    bool plain_head_ = false;
};

}  // namespace mesa::transport::detail
