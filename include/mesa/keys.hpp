#pragma once
// The names of the cluster contract (PROTOCOL.md, "Redis schema"), with the
// namespace suffix applied.
#include <string>
#include <string_view>

namespace mesa {

class keys {
public:
    explicit keys(std::string namespace_name = {}) : ns_(std::move(namespace_name)) {}

    std::string const& namespace_name() const noexcept { return ns_; }

    std::string ws() const { return name("ws"); }
    std::string portal() const { return name("portal"); }
    std::string available_portals_pool() const { return name("available_portals_pool"); }
    std::string connected_clients() const { return name("connected_clients"); }
    std::string connected_clients_count() const { return name("connected_clients_count"); }
    std::string undelivered_messages() const { return name("undelivered_messages"); }

    // ---- ours: exact presence (not read by Node peers) ----------------------
    /// Hash: id -> number of its open sockets in the whole cluster.
    std::string presence() const { return name("mesa_presence"); }
    /// Hash: live server instance -> its registration epoch (fencing token).
    std::string instances() const { return name("mesa_instances"); }
    /// Hash: server instance -> its open connections (its share of connected_clients_count).
    std::string instance_connections() const { return name("mesa_instance_connections"); }
    /// Hash: id -> that id's open sockets on `instance`.
    std::string instance_sockets(std::string_view instance) const { return instance_key("mesa_sockets:", instance); }
    /// String with a time to live: present while `instance` is alive.
    std::string instance_alive(std::string_view instance) const { return instance_key("mesa_alive:", instance); }
    /// Counter handing out registration epochs.
    std::string epoch() const { return name("mesa_epoch"); }
    /// Counter numbering the messages kept in outboxes.
    std::string sequence() const { return name("mesa_seq"); }
    /// Hash: id -> redeliveries in a row that no socket of it confirmed.
    std::string attempts() const { return name("mesa_attempts"); }
    /// Hash: seq -> message sent to `id`'s sockets and not confirmed yet.
    std::string outbox(std::string_view id) const { return instance_key("mesa_outbox:", id); }
    /// String with a time to live: the state of idempotency key `key`
    /// (mesa/idempotency.hpp): `~<token>` while a send holds it, `=<result>`
    /// once that send was taken. `mesa_idempotency:<length of key>:<key>[_<namespace>]`:
    /// the length keeps key "k_ns" without a namespace apart from key "k" in
    /// namespace "ns", since keys are the callers' own text.
    std::string idempotency(std::string_view key) const {
        return instance_key(("mesa_idempotency:" + std::to_string(key.size()) + ":").c_str(), key);
    }
    /// The namespace suffix (`_<namespace>`, or empty): scripts build `mesa_sockets:<instance><suffix>`.
    std::string suffix() const { return ns_.empty() ? std::string() : "_" + ns_; }

    /// A key of middleware `middleware` (`<prefix>_mw-<name>[_<namespace>]`).
    std::string middleware(std::string_view prefix, std::string_view middleware) const {
        return name(std::string(prefix) + "_mw-" + std::string(middleware));
    }

    std::string name(std::string base) const { return ns_.empty() ? base : base + "_" + ns_; }

private:
    std::string instance_key(char const* kind, std::string_view instance) const {
        return std::string(kind).append(instance).append(suffix());
    }

    std::string ns_;
};

}  // namespace mesa
