#pragma once
// The server-side client object: one per open connection (the C++ client
// that connects to servers is mesa/client.hpp).
//
//   server.on_connection([](auto const& client) {
//       client->on_message([client](mesa::message const& m) { client->send(m); });
//   });
//
// Thread-safety: use it on its server's thread only. Holding the shared_ptr
// after the connection closed is safe; sends then do nothing.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <tuple>
#include <utility>

#include <mesa/close_code.hpp>
#include <mesa/message.hpp>

namespace mesa {

template <class Server>
class basic_client : public std::enable_shared_from_this<basic_client<Server>>, private Server::feature_states {
public:
    using server_type = Server;
    using connection_ptr = typename Server::transport_type::connection_ptr;
    using message_handler = std::function<void(message const&)>;

    basic_client(Server& server, connection_ptr connection) : server_(&server), connection_(std::move(connection)) {}

    basic_client(basic_client const&) = delete;
    basic_client& operator=(basic_client const&) = delete;

    /// Sends `m` to this connection only.
    void send(message const& m) { server_->send_to(*this, m); }

    /// Closes the connection with `code` (1000 by default).
    void disconnect(std::uint16_t code = close_code::normal, std::string const& reason = {}) {
        server_->close(*this, code, reason);
    }

    /// Called with each application message (op 0) this client sends.
    void on_message(message_handler handler) { on_message_ = std::move(handler); }

    bool is_open() const noexcept { return open_ && !closing_; }
    /// The id given by authentication; empty before.
    std::string const& id() const noexcept { return id_; }
    Server& server() noexcept { return *server_; }
    connection_ptr const& connection() const noexcept { return connection_; }

    /// The per-connection state of feature F (only for a listed F).
    template <class F>
    typename F::state& state() {
        return std::get<typename F::state>(static_cast<typename Server::feature_states&>(*this));
    }
    template <class F>
    typename F::state const& state() const {
        return std::get<typename F::state>(static_cast<typename Server::feature_states const&>(*this));
    }

private:
    friend Server;

    Server* server_;
    connection_ptr connection_;
    message_handler on_message_;
    std::string id_;
    std::size_t index_ = 0;  // position in the server's client list
    bool open_ = true;
    bool closing_ = false;  // a close was sent; nothing more goes out
    bool present_ = false;  // counted under id_ in the cluster's presence
    // The pending admission under the per-user cap (0: none), see server::mark_present.
    std::uint64_t admission_ = 0;
    bool reported_ = false;  // an error event for it was raised in the current handler
};

}  // namespace mesa
