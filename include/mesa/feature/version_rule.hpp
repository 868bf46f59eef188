#pragma once
// version_rule (the reference's client.enforceEqualVersions): clients announce
// their version with op 0 `t: "CLIENT_VERSION"`, `d: {v}`; a different
// version is closed with 1002. The announcement itself is protocol, not an
// application message, so it is not passed on.
#include <string>

#include <mesa/close_code.hpp>
#include <mesa/feature/hooks.hpp>
#include <mesa/opcode.hpp>
#include <mesa/version.hpp>

namespace mesa {

struct version_rule {
    struct options {
        bool enabled = true;
        std::string version = version_string;  // what clients must announce
    };
    struct state {};

    template <class Server>
    struct component : feature::hooks {
        component(Server& server, options const& o) : server_(&server), options_(o) {}

        void on_hello(json::object&, json::array& rules) const {
            if (options_.enabled) rules.emplace_back("enforce_equal_versions");
        }
        template <class Client>
        bool on_message(Client& c, message& m) {
            if (!options_.enabled || m.op != opcode::dispatch || m.t != std::string("CLIENT_VERSION")) return false;
            auto const* v = m.d.if_contains("v");
            if (!v || !v->is_string() || v->get_string() != options_.version) {
                server_->report("client version does not match " + options_.version, c.shared_from_this());
                server_->close(c, close_code::protocol_error, "client version mismatch");
            }
            return true;
        }

        Server* server_;
        options options_;
    };
};

}  // namespace mesa
