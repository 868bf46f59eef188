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
    /// A key of middleware `middleware` (`<prefix>_mw-<name>[_<namespace>]`).
    std::string middleware(std::string_view prefix, std::string_view middleware) const {
        return name(std::string(prefix) + "_mw-" + std::string(middleware));
    }

    std::string name(std::string base) const { return ns_.empty() ? base : base + "_" + ns_; }

private:
    std::string ns_;
};

}  // namespace mesa
