#pragma once
// The in-memory transport: drives a server without sockets, for unit tests
// and fuzzing. A test opens peers, writes frames as a client would, runs the
// io_context, and reads what the server sent.
//
//   mesa::transport::memory& t = server.transport();
//   auto peer = t.connect("/ws");
//   peer->send_text(R"({"op":0,"d":{},"t":"PING"})");
//   ioc.poll();
//   CHECK(peer->received().back() == ...);
//
// Thread-safety: none; everything runs on the server's thread.
#include <mesa/detail/config.hpp>  // first: the macros Asio and websocketpp need

#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <mesa/http.hpp>
#include <mesa/transport/settings.hpp>

namespace mesa::transport {

class memory {
public:
    struct options {};

    /// The server side of one in-memory connection; also the test's handle
    /// on the peer.
    class connection : public std::enable_shared_from_this<connection> {
    public:
        void* context = nullptr;  // the server's client object

        /// Frames the server sent to this peer, in order.
        std::vector<std::string> const& received() const { return received_; }
        /// Times the server wrote to this peer (a joined burst counts once).
        std::size_t writes() const { return writes_; }
        /// Drops what was read so far.
        void clear() { received_.clear(); }
        /// Stops reading, as a slow consumer: later frames pile up unread.
        void stall() { stalled_ = true; }
        /// Answers every op 1 (heartbeat) with an op 11, as Mesa clients do.
        void answer_heartbeats() { answers_heartbeats_ = true; }
        bool open() const { return open_; }
        /// The close code once closed (by either side).
        std::optional<std::uint16_t> close_code() const { return close_code_; }
        std::string const& close_reason() const { return close_reason_; }
        /// HTTP status of the upgrade: 101, or why it was refused.
        int http_status() const { return http_status_; }
        /// The Retry-After (seconds) of a refused upgrade; 0: none.
        unsigned retry_after() const { return retry_after_; }

        void send_text(std::string text) { deliver(std::move(text), false); }
        void send_binary(std::string data) { deliver(std::move(data), true); }
        /// Closes from the peer's side.
        void close(std::uint16_t code = 1000, std::string reason = {}) {
            if (!open_) return;
            asio::post(owner_->ioc_, [self = shared_from_this(), code, reason = std::move(reason)] {
                self->owner_->finish(self, code, reason);
            });
        }

    private:
        friend class memory;
        explicit connection(memory* owner) : owner_(owner) {}

        void deliver(std::string payload, bool binary) {
            if (!open_) return;
            asio::post(owner_->ioc_, [self = shared_from_this(), payload = std::move(payload), binary] {
                if (!self->open_) return;
                if (payload.size() > self->owner_->settings_.max_frame_bytes) {
                    self->owner_->finish(self, 1009, "frame too big");
                    return;
                }
                self->owner_->events_.on_message(self, payload, binary);
            });
        }

        memory* owner_;
        std::vector<std::string> received_;
        bool open_ = false;
        std::optional<std::uint16_t> close_code_;
        std::string close_reason_;
        int http_status_ = 0;
        unsigned retry_after_ = 0;
        bool stalled_ = false;
        bool answers_heartbeats_ = false;
        std::size_t unread_bytes_ = 0;
        std::size_t writes_ = 0;
    };

    using connection_ptr = std::shared_ptr<connection>;
    /// One or more text frames (several once joined), in order.
    using frame = std::shared_ptr<std::vector<std::string> const>;

    memory(asio::io_context& ioc, settings s, options = {}) : ioc_(ioc), settings_(std::move(s)) {}

    void start(events<connection_ptr> ev) { events_ = std::move(ev); }
    std::uint16_t local_port() const { return 0; }
    void stop_listening() { listening_ = false; }

    /// Opens a connection to `target` (path and query, with an Origin header
    /// when `origin` is not empty) as a client would; the
    /// server sees it when the io_context runs. A refused upgrade leaves the
    /// peer closed with its HTTP status set.
    connection_ptr connect(std::string const& target = "/", std::string const& origin = {}) {
        connection_ptr con(new connection(this));
        if (!listening_) {
            con->http_status_ = 503;  // as a real listener that stopped: no event
            return con;
        }
        int const refused = !path_matches(settings_.path, target) ? 404 : events_.admit ? events_.admit(origin) : 0;
        if (refused) {
            con->http_status_ = refused;
            con->retry_after_ = events_.retry_after ? events_.retry_after() : 0;
            if (events_.on_refused) events_.on_refused(refused, target, origin);
            return con;
        }
        con->http_status_ = 101;
        con->open_ = true;
        asio::post(ioc_, [this, con] {
            if (con->open_) events_.on_open(con);
        });
        return con;
    }

    /// Sends a plain HTTP request to the server's HTTP hook; `on_response`
    /// gets the response when the handler gives it (now or later).
    void request(http_request const& req, http_responder on_response) {
        if (!events_.on_http) return on_response(http_response{426, {}, {}});
        events_.on_http(req, std::move(on_response));
    }

    static frame prepare(std::string payload) {
        return std::make_shared<std::vector<std::string> const>(1, std::move(payload));
    }

    /// The frames of `frames`, in order, as one frame sent at once.
    static frame join(std::vector<frame> const& frames) {
        std::vector<std::string> all;
        for (auto const& f : frames) all.insert(all.end(), f->begin(), f->end());
        return std::make_shared<std::vector<std::string> const>(std::move(all));
    }

    static void send(connection_ptr const& con, frame const& f) {
        if (!con->open_) return;
        ++con->writes_;
        if (con->stalled_)
            con->unread_bytes_ += frame_size(f);
        else
            con->received_.insert(con->received_.end(), f->begin(), f->end());
        if (!con->answers_heartbeats_ || con->stalled_) return;
        for (auto const& text : *f)
            if (text.rfind(R"({"op":1,)", 0) == 0) con->send_text(R"({"op":11,"d":{}})");
    }

    /// Bytes the peer has not read yet (see stall()).
    static std::size_t buffered_bytes(connection_ptr const& con) { return con->unread_bytes_; }
    static std::size_t frame_size(frame const& f) {
        std::size_t bytes = 0;
        for (auto const& payload : *f) bytes += payload.size();
        return bytes;
    }

    static void close(connection_ptr const& con, std::uint16_t code, std::string const& reason) {
        if (!con->open_) return;
        asio::post(con->owner_->ioc_, [con, code, reason] { con->owner_->finish(con, code, reason); });
    }

private:
    void finish(connection_ptr const& con, std::uint16_t code, std::string const& reason) {
        if (!con->open_) return;
        con->open_ = false;
        con->close_code_ = code;
        con->close_reason_ = reason;
        if (con->context) events_.on_close(con, code, reason);
    }

    asio::io_context& ioc_;
    settings settings_;
    events<connection_ptr> events_;
    bool listening_ = true;
};

}  // namespace mesa::transport
