#pragma once
// The lean socket transport: WebSocket over standalone Asio, ws:// (plain
// TCP), without websocketpp's connection layer. basic_asio<Stream> holds the
// connection logic; its stream policy says how bytes reach the socket:
// asio_plain here, asio_tls (wss://, OpenSSL) in <mesa/transport/asio_tls.hpp>.
//
//   using server = mesa::server<mesa::transport::asio_plain, mesa::broker::memory>;
//
// A connection is a socket and the state of its protocol steps, nothing
// else while it is idle:
// - no read buffer of its own: it waits for readability (async_wait) and
//   reads into one buffer of the transport, shared by all its connections
//   (they run on one thread); a frame split over reads keeps only its own
//   bytes (detail::frame_reader);
// - the opening request is parsed by detail::handshake (Boost.Beast's
//   parser, then RFC 6455 §4.2.1 checks; see ws_handshake.hpp for the
//   refusals and their order); nothing of it is kept after the upgrade but
//   the connection;
// - frames are prepared once (header and payload) and the same frame is
//   queued on every recipient (shared, no copy per recipient); join() makes
//   a burst one buffer; a connection's queue is written in one gathered write;
// - closing is a handshake bounded by options::close_timeout: the code the
//   server sent is the one reported, whether the peer answers or not;
// - plain HTTP requests (no `Upgrade: websocket`) go to the server's header
//   check once their header section is whole, then whole to its http
//   handler (chunked bodies, `Expect: 100-continue`, bodies over
//   request_limits::max_body_bytes refused with 413 before they are read);
//   HTTP/1.1 connections persist (RFC 9112 §9.3): pipelined requests are
//   answered one at a time, in order, and the connection does not read
//   while a response is pending, so at most one read (64 KiB) of later
//   requests waits in memory and the rest in the socket (TCP flow control);
//   a persistent connection idle for request_limits::idle_timeout is closed,
//   holding no buffer meanwhile, and a later request may be the upgrade.
//
// Thread-safety: none; an instance and its connections belong to the thread
// running its io_context. One instance per server and thread.
#include <mesa/detail/config.hpp>  // first: the macros Asio and websocketpp need

#include <asio/basic_socket_acceptor.hpp>
#include <asio/basic_stream_socket.hpp>
#include <asio/basic_waitable_timer.hpp>
#include <asio/buffer.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ip/v6_only.hpp>
#include <asio/post.hpp>
#include <asio/write.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <mesa/http.hpp>
#include <mesa/transport/detail/listen_options.hpp>
#include <mesa/transport/detail/ws_frames.hpp>
#include <mesa/transport/detail/ws_handshake.hpp>
#include <mesa/transport/settings.hpp>

namespace mesa::transport {

namespace detail {

/// The bytes of one or more whole server frames: a header (empty for joined
/// frames) and a payload, written as two buffers so the payload is never copied.
struct frame_bytes {
    std::string payload;
    char header[10] = {};
    std::uint8_t header_size = 0;

    std::size_t size() const { return header_size + payload.size(); }
};

}  // namespace detail

/// Options of the Asio transports (server::options::transport).
struct asio_options {
    // A connection that has not sent a whole request by then is closed
    // (with 408 when the request had begun): idle sockets that never speak
    // cost a descriptor each. Counted from the connection, then from the
    // first byte of each later request on a persistent connection.
    std::chrono::milliseconds handshake_timeout{5000};
    // How long a close frame waits for the peer's (RFC 6455 §7.1.1); then
    // the socket is closed anyway, and the code sent is the one reported.
    std::chrono::milliseconds close_timeout{3000};
    // An HTTP response (or refusal) not written whole by then ends the
    // connection: a client that pipelines requests and never reads would
    // hold it, and the kernel's buffers, for ever.
    std::chrono::milliseconds send_timeout{10000};
    detail::request_limits request_limits{};
};

namespace detail {

/// What a stream's non-blocking step (a TLS handshake) needs next.
/// plain_http: the peer sent a plain HTTP request to the TLS port; the stream
/// now passes bytes as they are, for an answer the peer can read.
enum class stream_step : std::uint8_t { done, want_read, want_write, failed, plain_http };

/// The stream policy of basic_asio for ws://: the bytes go to the socket as
/// they are. One per connection, and empty. See asio_tls.hpp for the TLS one.
struct plain_stream {
    using options = asio_options;
    static constexpr char const* scheme = "ws";
    /// What the connections of a transport share: nothing here.
    struct context {
        void load(options const&) {}
    };

    static constexpr bool handshakes = false;  // nothing before the HTTP request

    explicit plain_stream(context&) {}
    template <class Socket>
    std::size_t read_some(Socket& socket, asio::mutable_buffer buffer, std::error_code& ec) {
        return socket.read_some(buffer, ec);
    }
    /// Whether a read of `n` bytes into a buffer of `size` left the socket
    /// empty: a short read does.
    bool drained(std::size_t n, std::size_t size) const { return n < size; }
    template <class Socket>
    typename Socket::wait_type read_wait() const {
        return Socket::wait_read;
    }
    template <class Socket, class Handler>
    void async_write(Socket& socket, std::vector<asio::const_buffer> buffers, Handler&& handler) {
        asio::async_write(socket, buffers, std::forward<Handler>(handler));
    }
    /// Before the socket is shut down (TLS: the close_notify alert).
    void notify_close() {}
    /// Once the socket is closed: frees what the stream holds.
    void release() {}
};

}  // namespace detail

/// A Mesa transport on Asio sockets, the bytes written as they are (ws://,
/// detail::plain_stream) or through TLS (wss://, asio_tls.hpp); see the top
/// of this header.
template <class Stream>
class basic_asio {
    using socket_type = asio::basic_stream_socket<asio::ip::tcp, asio::io_context::executor_type>;
    using acceptor_type = asio::basic_socket_acceptor<asio::ip::tcp, asio::io_context::executor_type>;
    using timer_type =
        asio::basic_waitable_timer<std::chrono::steady_clock, asio::wait_traits<std::chrono::steady_clock>,
                                   asio::io_context::executor_type>;

public:
    using options = typename Stream::options;

    class connection;
    using connection_ptr = std::shared_ptr<connection>;
    /// A prepared text frame (or several, joined), shared by all its recipients.
    using frame = std::shared_ptr<detail::frame_bytes const>;
    static constexpr char const* scheme = Stream::scheme;

private:
    /// What connections share with their transport; it outlives the transport
    /// while a connection still has a handler pending.
    struct core {
        asio::io_context& ioc;
        settings config;
        options opts;
        events<connection_ptr> ev;
        std::vector<char> read_buffer = std::vector<char>(64 * 1024);
        bool alive = true;
        connection* first = nullptr;  // every connection, to close them when the transport goes
        typename Stream::context stream{};
    };

public:
    /// One client's socket and the state of its protocol steps (request,
    /// frames, close); the server reaches it through connection_ptr.
    class connection : public std::enable_shared_from_this<connection> {
    public:
        void* context = nullptr;  // the server's client object

        connection(std::shared_ptr<core> c, socket_type s)
            : core_(std::move(c)),
              socket_(std::move(s)),
              stream_(core_->stream),
              reader_(core_->config.max_frame_bytes) {
            next_ = core_->first;
            if (next_) next_->prev_ = this;
            core_->first = this;
        }
        ~connection() {
            if (prev_)
                prev_->next_ = next_;
            else if (core_->first == this)
                core_->first = next_;
            if (next_) next_->prev_ = prev_;
        }
        connection(connection const&) = delete;
        connection& operator=(connection const&) = delete;

        /// The peer's address and port ("[::ffff:127.0.0.1]:50000"), "?"
        /// once the socket is closed. Read from the socket: nothing is kept.
        std::string remote_endpoint() const {
            std::error_code ec;
            auto const ep = socket_.remote_endpoint(ec);
            if (ec) return "?";
            std::ostringstream out;
            out << ep;
            return out.str();
        }

    private:
        friend class basic_asio;
        using std::enable_shared_from_this<connection>::shared_from_this;
        using std::enable_shared_from_this<connection>::weak_from_this;
        enum class phase : std::uint8_t { request, responding, open, closing, done };

        void start() {
            arm_timer(core_->opts.handshake_timeout);
            if constexpr (Stream::handshakes)
                secure({});
            else
                wait_readable();
        }

        /// The stream's own handshake (TLS), then the opening request.
        void secure(std::error_code ec) {
            if (phase_ == phase::done) return;
            if (!core_->alive || ec) return teardown();
            std::string failure;
            switch (stream_.handshake(socket_, failure)) {
                case detail::stream_step::done:
                    // Bytes that came with its last flight woke nobody: read now.
                    return readable({});
                case detail::stream_step::want_read:
                case detail::stream_step::want_write:
                    return socket_.async_wait(stream_.template read_wait<socket_type>(),
                                              [self = shared_from_this()](std::error_code e) { self->secure(e); });
                case detail::stream_step::failed:
                    if (!failure.empty() && core_->ev.on_failed)
                        core_->ev.on_failed(remote_endpoint() + ": " + failure);
                    return teardown();
                case detail::stream_step::plain_http:
                    return refuse_plain_http();
            }
        }

        /// 400 in clear, then the end as after any refusal (the response
        /// read before the close); the request itself is not read.
        void refuse_plain_http() {
            cancel_timer();
            answer(detail::http_response_bytes(400, {}, "This port speaks TLS: use https:// or wss://\n", "text/plain",
                                               "Connection: close\r\n", stream_.plain_head()));
            if (core_->ev.on_http_refused) core_->ev.on_http_refused(400, {}, "plain HTTP sent to the TLS port");
        }

        void wait_readable() {
            if (waiting_) return;  // one wait at a time, however many paths ask for it
            waiting_ = true;
            socket_.async_wait(stream_.template read_wait<socket_type>(),
                               [self = shared_from_this()](std::error_code ec) {
                                   self->waiting_ = false;
                                   self->readable(ec);
                               });
        }

        /// Whether the connection reads now: not while an HTTP handler has
        /// its request, nor once the peer's close frame arrived.
        bool reading() const {
            switch (phase_) {
                case phase::request:
                case phase::open:
                    return true;
                case phase::closing:
                    return !close_received_;
                case phase::responding:
                    return lingering_;
                default:
                    return false;
            }
        }

        void readable(std::error_code ec) {
            if (phase_ == phase::done) return;
            if (!core_->alive) return teardown();
            if (ec) return lost();
            auto& buffer = core_->read_buffer;
            // Asio's reactor is edge-triggered and a wait is not speculative:
            // bytes left in the socket would wake nobody, so read until a
            // short read (the socket drained), then wait. A peer that keeps
            // the socket full gets its next reads after the others' turn.
            for (int reads = 0; reads < 16; ++reads) {
                if (!reading()) return;
                std::size_t const n = stream_.read_some(socket_, asio::buffer(buffer), ec);
                if (ec == asio::error::would_block || ec == asio::error::try_again) return wait_readable();
                if (ec) return lost();
                if (phase_ == phase::request)
                    take_request(std::string_view(buffer.data(), n));
                else if (phase_ == phase::open || phase_ == phase::closing)
                    take_frames(buffer.data(), n);
                if (stream_.drained(n, buffer.size())) {
                    if (reading()) wait_readable();
                    return;
                }
            }
            asio::post(core_->ioc, [self = shared_from_this()] { self->readable({}); });
        }

        // ---- requests --------------------------------------------------------
        void take_request(std::string_view bytes) {
            if (!handshake_) {  // the first bytes, or the next request on a persistent connection
                handshake_ = std::make_unique<detail::handshake>(core_->config.path, core_->opts.request_limits);
                if (idle_) arm_timer(core_->opts.handshake_timeout);
                idle_ = false;
            }
            act(handshake_->feed(bytes));
        }

        void act(detail::request_verdict v) {
            using detail::request_verdict;
            for (;; v = handshake_->feed({})) {
                switch (v) {
                    case request_verdict::need_more:
                        return;
                    case request_verdict::interim:
                        write_raw(handshake_->response());
                        continue;
                    case request_verdict::header:
                        if (core_->ev.on_http_header) {
                            if (auto refusal = core_->ev.on_http_header(handshake_->header())) {
                                // The server's own answer: not reported as the transport's refusal.
                                return answer(handshake_->refuse_request(*refusal));
                            }
                        }
                        continue;
                    case request_verdict::refused:
                        return refused(handshake_->status(), handshake_->response());
                    case request_verdict::upgrade:
                        return upgrade();
                    case request_verdict::http:
                        return http();
                }
            }
        }

        void refused(int status, std::string response) {
            auto target = std::string(handshake_->target());
            auto origin = std::string(handshake_->origin());
            bool const upgrade = handshake_->is_upgrade();
            auto reason = handshake_->reason();
            handshake_.reset();
            cancel_timer();
            answer(std::move(response));
            if (upgrade) {
                if (core_->ev.on_refused) core_->ev.on_refused(status, target, origin);
            } else if (core_->ev.on_http_refused) {
                core_->ev.on_http_refused(status, target, reason);
            }
        }

        void upgrade() {
            int const refusal = core_->ev.admit ? core_->ev.admit(handshake_->origin()) : 0;
            if (refusal != 0) {
                unsigned const wait = core_->ev.retry_after ? core_->ev.retry_after() : 0;
                return refused(refusal, handshake_->refuse(refusal, wait));
            }
            // The 101 and what on_open sends (the hello) leave in one write.
            corked_ = true;
            write_raw(handshake_->accept());
            std::string rest = handshake_->take_rest();
            handshake_.reset();
            cancel_timer();
            phase_ = phase::open;
            // Writes are already coalesced per burst; Nagle would only delay
            // the next one behind a delayed ACK.
            std::error_code ignored;
            socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
            core_->ev.on_open(shared_from_this());
            uncork();
            if (!rest.empty() && phase_ == phase::open) take_frames(rest.data(), rest.size());
        }

        void http() {
            http_request request = handshake_->take_request();
            cancel_timer();
            phase_ = phase::responding;
            std::uint32_t const exchange = ++exchanges_;
            if (!core_->ev.on_http) return respond(exchange, {426, {}, "WebSocket upgrade required\n"});
            // The responder holds the connection until it is called.
            core_->ev.on_http(request, [self = shared_from_this(), exchange](http_response response) {
                self->respond(exchange, std::move(response));
            });
        }

        void respond(std::uint32_t exchange, http_response const& response) {
            // Once per request: a late or second call finds the exchange over.
            if (phase_ != phase::responding || exchange != exchanges_ || end_after_write_ || !handshake_) return;
            answer(handshake_->respond(response));
        }

        /// Writes an HTTP response; send_timeout bounds its writing, then the
        /// next request (persistent connections) or the end (see written()).
        void answer(std::string response) {
            phase_ = phase::responding;
            write_raw(std::move(response));
            end_after_write_ = true;
            arm_timer(core_->opts.send_timeout);
        }

        /// The response is written: the next request on a persistent
        /// connection (pipelined bytes first), else the end.
        void exchange_done() {
            end_after_write_ = false;
            if (!handshake_ || !handshake_->keep_alive()) return linger();
            phase_ = phase::request;
            auto const v = handshake_->next();
            if (!handshake_->started()) {
                handshake_.reset();  // idle: no buffer held
                idle_ = true;
                arm_timer(core_->opts.request_limits.idle_timeout);
            } else {
                arm_timer(core_->opts.handshake_timeout);
            }
            if (handshake_) act(v);
            if (reading()) wait_readable();
        }

        // ---- frames ---------------------------------------------------------
        void take_frames(char* data, std::size_t size) {
            auto self = shared_from_this();  // a handler may drop the server's reference
            // What the frames of one read answer (replies, pongs) leaves in one write.
            corked_ = true;
            auto error = reader_.feed(data, size, [&](detail::frame_event e, std::string_view payload) {
                switch (e) {
                    case detail::frame_event::text:
                    case detail::frame_event::binary:
                        if (phase_ == phase::open && core_->alive)
                            core_->ev.on_message(self, payload, e == detail::frame_event::binary);
                        break;
                    case detail::frame_event::ping:
                        control_received(self);
                        if (phase_ == phase::open) pong(payload);
                        break;
                    case detail::frame_event::pong:
                        control_received(self);
                        break;
                    case detail::frame_event::close:
                        peer_closed();
                        break;
                }
            });
            uncork();
            if (error) fail(error.code, error.reason);
        }

        /// A ping or pong: told to the server, which counts them with the
        /// messages (events::on_control).
        void control_received(connection_ptr const& self) {
            if (phase_ == phase::open && core_->alive && core_->ev.on_control) core_->ev.on_control(self);
        }

        /// Answers a ping. Only the most recent ping needs its pong (RFC 6455
        /// §5.5.3): a pong still waiting in the queue is replaced, so a peer
        /// that pings and never reads holds at most two (one being written).
        void pong(std::string_view payload) {
            frame f = control(detail::ws_opcode::pong, payload);
            if (queued_pong_ < queued_.size()) {
                buffered_ += f->size();
                buffered_ -= queued_[queued_pong_]->size();
                queued_[queued_pong_] = std::move(f);
                return;
            }
            queued_pong_ = queued_.size();
            queue(std::move(f));
        }

        /// The peer's close frame: answered with its code (the closing
        /// handshake it started), or the end of the one we started.
        void peer_closed() {
            close_received_ = true;
            if (phase_ == phase::open) {
                std::uint16_t const code = reader_.close_code();
                std::string const reason = reader_.close_reason();
                send_close(code == 1005 ? control(detail::ws_opcode::close, {}) : close_bytes(code, reason));
                report_close(code, reason);
            }
            end_once_written();
        }

        /// A frame the reader refused: close with its code, without waiting
        /// for an answer (RFC 6455 §7.1.7).
        void fail(std::uint16_t code, char const* reason) {
            if (phase_ == phase::open) {
                sent_code_ = code;
                sent_reason_ = reason;
                send_close(close_bytes(code, reason));
                report_close(code, reason);
            }
            end_once_written();
        }

        void close(std::uint16_t code, std::string const& reason) {
            if (phase_ != phase::open) return;
            sent_code_ = code;
            sent_reason_ = reason;
            send_close(close_bytes(code, reason));
        }

        // The one close frame this side sends; close_timeout bounds the wait
        // for the peer's answer and a write the peer never reads.
        void send_close(frame f) {
            phase_ = phase::closing;
            corked_ = false;  // the close frame goes out before anything ends the connection
            queue(std::move(f));
            close_sent_ = true;
            arm_timer(core_->opts.close_timeout);
        }

        void end_once_written() {
            if (!writing_)
                teardown();
            else
                end_after_write_ = true;
        }

        // ---- writing --------------------------------------------------------
        static frame control(std::uint8_t opcode, std::string_view payload) {
            auto f = std::make_shared<detail::frame_bytes>();
            f->payload = detail::control_frame(opcode, payload);
            return f;
        }
        static frame close_bytes(std::uint16_t code, std::string_view reason) {
            auto f = std::make_shared<detail::frame_bytes>();
            f->payload = detail::close_frame(code, reason);
            return f;
        }

        void write_raw(std::string bytes) {
            auto f = std::make_shared<detail::frame_bytes>();
            f->payload = std::move(bytes);
            queue(std::move(f));
        }

        void send(frame const& f) {
            if (phase_ == phase::open) queue(f);
        }

        void queue(frame f) {
            buffered_ += f->size();
            queued_.push_back(std::move(f));
            if (!writing_ && !corked_) write();
        }

        void uncork() {
            corked_ = false;
            if (!writing_ && !queued_.empty() && phase_ != phase::done) write();
        }

        void write() {
            writing_ = true;
            queued_pong_ = no_pong;  // being written now, no longer replaceable
            in_flight_.swap(queued_);
            std::vector<asio::const_buffer> buffers;
            buffers.reserve(2 * in_flight_.size());
            for (auto const& f : in_flight_) {
                if (f->header_size) buffers.emplace_back(f->header, f->header_size);
                buffers.emplace_back(f->payload.data(), f->payload.size());
            }
            stream_.async_write(
                socket_, std::move(buffers),
                [self = shared_from_this()](std::error_code ec, std::size_t n) { self->written(ec, n); });
        }

        void written(std::error_code ec, std::size_t n) {
            writing_ = false;
            buffered_ -= n;
            std::vector<frame>().swap(in_flight_);  // an idle connection holds no buffer
            if (phase_ == phase::done) return;
            if (ec || !core_->alive) return lost();
            if (!queued_.empty()) return write();
            if (end_after_write_) {
                if (phase_ == phase::responding && !lingering_) return exchange_done();
                return teardown();
            }
        }

        // ---- the end ----------------------------------------------------------
        /// After an HTTP response: no more sending, and the socket closed once
        /// the peer has read it (its end of file) or the close timeout passed,
        /// so that unread request bytes do not turn our close into a reset
        /// that could destroy the response.
        void linger() {
            std::error_code ignored;
            stream_.notify_close();
            socket_.shutdown(socket_type::shutdown_send, ignored);
            lingering_ = true;
            arm_timer(core_->opts.close_timeout);
            wait_readable();
        }

        void lost() {
            if (phase_ == phase::open)
                report_close(1006, "connection lost");
            else if (phase_ == phase::closing && close_sent_)
                report_close(sent_code_, sent_reason_);
            teardown();
        }

        void timed_out() {
            // A request begun and not whole in time gets 408; a connection
            // that sent nothing (or idle between requests) just closes.
            if (phase_ == phase::request && handshake_ && handshake_->started()) {
                handshake_->timed_out();
                return refused(handshake_->status(), handshake_->response());
            }
            if (phase_ == phase::closing) report_close(sent_code_, sent_reason_);
            teardown();
        }

        void teardown() {
            if (phase_ == phase::done) return;
            if (phase_ == phase::closing) report_close(sent_code_, sent_reason_);
            phase_ = phase::done;
            cancel_timer();
            std::error_code ignored;
            stream_.notify_close();
            socket_.shutdown(socket_type::shutdown_both, ignored);
            socket_.close(ignored);
            stream_.release();
            handshake_.reset();
            std::vector<frame>().swap(queued_);
            queued_pong_ = no_pong;
        }

        void report_close(std::uint16_t code, std::string const& reason) {
            if (reported_) return;
            reported_ = true;
            if (context && core_->alive) core_->ev.on_close(shared_from_this(), code, reason);
        }

        void arm_timer(std::chrono::milliseconds after) {
            if (!timer_) timer_ = std::make_unique<timer_type>(core_->ioc.get_executor());
            timer_->expires_after(after);
            timer_->async_wait([weak = weak_from_this()](std::error_code ec) {
                auto self = weak.lock();
                if (!ec && self) self->timed_out();
            });
        }

        void cancel_timer() { timer_.reset(); }

        std::shared_ptr<core> core_;
        socket_type socket_;
        Stream stream_;
        connection* prev_ = nullptr;
        connection* next_ = nullptr;
        std::unique_ptr<detail::handshake> handshake_;  // while a request is read or answered
        detail::frame_reader reader_;                   // once upgraded
        std::unique_ptr<timer_type> timer_;             // while a handshake or a close runs
        static constexpr std::size_t no_pong = std::size_t(-1);
        std::vector<frame> queued_;          // waiting for the current write
        std::size_t queued_pong_ = no_pong;  // where in queued_ a pong waits
        std::vector<frame> in_flight_;       // being written
        std::size_t buffered_ = 0;           // bytes of both
        std::string sent_reason_;
        std::uint16_t sent_code_ = 1005;
        phase phase_ = phase::request;
        bool writing_ = false;
        bool corked_ = false;  // queue without writing: more of the same turn follows
        bool end_after_write_ = false;
        bool close_sent_ = false;
        bool close_received_ = false;
        bool lingering_ = false;
        bool reported_ = false;
        bool waiting_ = false;         // a wait for readability is pending
        bool idle_ = false;            // between requests on a persistent connection
        std::uint32_t exchanges_ = 0;  // HTTP requests handed to the server
    };

    basic_asio(asio::io_context& ioc, settings s, options o = {})
        : core_(std::make_shared<core>(core{ioc, std::move(s), o, {}})), acceptor_(ioc.get_executor()) {}
    basic_asio(basic_asio const&) = delete;
    basic_asio& operator=(basic_asio const&) = delete;
    ~basic_asio() {
        core_->alive = false;
        stop_listening();
        // Connections waiting on their sockets end when their handler runs.
        for (connection* c = core_->first; c; c = c->next_) {
            std::error_code ignored;
            c->socket_.cancel(ignored);
        }
    }

    /// Loads what the stream needs (TLS: the certificate files), binds and
    /// starts accepting; throws std::system_error when the port cannot be
    /// bound (or a file cannot be used): the only throwing call, made before
    /// serving.
    void start(events<connection_ptr> ev) {
        core_->stream.load(core_->opts);
        core_->ev = std::move(ev);
        auto const& config = core_->config;
        std::error_code ec;
        if (config.host.empty()) {
            // Every interface, IPv6 and IPv4; IPv4 only on hosts without IPv6.
            if (!open(asio::ip::tcp::endpoint(asio::ip::tcp::v6(), config.port), true, ec))
                open(asio::ip::tcp::endpoint(asio::ip::tcp::v4(), config.port), false, ec);
        } else {
            auto address = asio::ip::make_address(config.host, ec);
            if (!ec) open(asio::ip::tcp::endpoint(address, config.port), address.is_v6(), ec);
        }
        if (ec) throw std::system_error(ec, "mesa: cannot listen on port " + std::to_string(config.port));
        accept();
    }

    /// The bound port (useful after binding port 0).
    std::uint16_t local_port() {
        std::error_code ec;
        auto ep = acceptor_.local_endpoint(ec);
        return ec ? 0 : ep.port();
    }

    /// Stops accepting; open connections stay until closed.
    void stop_listening() {
        std::error_code ignored;
        if (acceptor_.is_open()) acceptor_.close(ignored);
        if (retry_) retry_->cancel();
    }

    static frame prepare(std::string payload) {
        auto f = std::make_shared<detail::frame_bytes>();
        f->header_size =
            static_cast<std::uint8_t>(detail::frame_header(detail::ws_opcode::text, payload.size(), f->header));
        f->payload = std::move(payload);
        return f;
    }

    /// The frames of `frames`, in order, as one frame: their bytes in one
    /// buffer, so each recipient costs one queued entry and one write.
    static frame join(std::vector<frame> const& frames) {
        auto f = std::make_shared<detail::frame_bytes>();
        std::size_t size = 0;
        for (auto const& part : frames) size += part->size();
        f->payload.reserve(size);
        for (auto const& part : frames) f->payload.append(part->header, part->header_size).append(part->payload);
        return f;
    }

    static void send(connection_ptr const& con, frame const& f) { con->send(f); }

    /// Bytes queued on `con` and not yet written.
    static std::size_t buffered_bytes(connection_ptr const& con) { return con->buffered_; }

    /// Payload bytes of a prepared frame (for joined frames, all their bytes).
    static std::size_t frame_size(frame const& f) { return f->payload.size(); }

    /// Starts the closing handshake with `code`; the close event follows
    /// with that code once the peer answered or close_timeout passed.
    static void close(connection_ptr const& con, std::uint16_t code, std::string const& reason) {
        con->close(code, reason);
    }

private:
    bool open(asio::ip::tcp::endpoint const& ep, bool v6, std::error_code& ec) {
        std::error_code ignored;
        acceptor_.close(ignored);
        ec.clear();
        acceptor_.open(ep.protocol(), ec);
        if (ec) return false;
        if (v6) acceptor_.set_option(asio::ip::v6_only(false), ignored);
        acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
        detail::set_listen_options(acceptor_, core_->config, ec);
        if (!ec) acceptor_.bind(ep, ec);
        if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
        return !ec;
    }

    void accept() {
        acceptor_.async_accept([this, c = core_](std::error_code ec, socket_type socket) {
            if (!c->alive || ec == asio::error::operation_aborted) return;
            if (ec) {
                // Out of descriptors, most likely: try again shortly rather than spin.
                if (c->ev.on_log) c->ev.on_log(log_level::error, "accept failed: " + ec.message());
                if (!retry_) retry_ = std::make_unique<timer_type>(c->ioc.get_executor());
                retry_->expires_after(std::chrono::milliseconds(100));
                retry_->async_wait([this, c](std::error_code e) {
                    if (!e && c->alive && acceptor_.is_open()) accept();
                });
                return;
            }
            socket.non_blocking(true, ec);
            if (!ec) std::make_shared<connection>(c, std::move(socket))->start();
            accept();
        });
    }

    std::shared_ptr<core> core_;
    acceptor_type acceptor_;
    std::unique_ptr<timer_type> retry_;
};

/// ws:// on plain TCP sockets.
using asio_plain = basic_asio<detail::plain_stream>;

}  // namespace mesa::transport
