#pragma once
// A server on the in-memory transport and frame helpers for unit tests.
#include <mesa/mesa.hpp>

#include <string>
#include <vector>

#include "drive.hpp"

namespace mesa::test {

template <class... Features>
using memory_server = mesa::server<mesa::transport::memory, mesa::broker::memory, Features...>;

/// The frames a peer received, parsed (fails the test on a bad frame).
inline std::vector<mesa::message> messages_of(mesa::transport::memory::connection const& peer) {
    std::vector<mesa::message> out;
    for (auto const& text : peer.received()) {
        auto parsed = mesa::parse(text);
        if (parsed)
            out.push_back(parsed.value());
        else
            out.push_back(mesa::message(-1, {{"unparsable", text}}));
    }
    return out;
}

/// The received application messages of type `type`.
inline std::vector<mesa::message> of_type(mesa::transport::memory::connection const& peer, std::string const& type) {
    std::vector<mesa::message> out;
    for (auto& m : messages_of(peer))
        if (m.op == mesa::opcode::dispatch && m.t && *m.t == type) out.push_back(m);
    return out;
}

inline std::string frame(std::string const& type, mesa::json::object d = {}) {
    return mesa::serialize(mesa::message(type, std::move(d)));
}

/// An op 2 frame with these credentials.
inline std::string auth_with(mesa::json::object credentials) {
    return mesa::serialize(mesa::message(mesa::opcode::authenticate, std::move(credentials)));
}

/// An op 2 frame asking to be `id`.
inline std::string auth_frame(std::string const& id, bool should_sync = true) {
    return auth_with(mesa::json::object{{"id", id}, {"shouldSync", should_sync}});
}

/// Authenticates every client as the `id` of its credentials.
template <class Server>
void trust_ids(Server& s) {
    s.template feature<mesa::authentication>().on_authenticate([](auto const&, mesa::json::object const& credentials,
                                                                  mesa::authentication::done done) {
        done.succeed(std::string(credentials.at("id").as_string()), mesa::json::object{{"id", credentials.at("id")}});
    });
}

/// Opens a peer on `s` that authenticates as `id` once the io_context runs
/// (the server must accept it, e.g. with trust_ids()).
template <class Server>
auto connect_as(Server& s, std::string const& id) {
    auto peer = s.transport().connect("/");
    peer->send_text(auth_frame(id));
    return peer;
}

}  // namespace mesa::test
