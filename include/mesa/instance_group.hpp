#pragma once
// Server instances of one process (one per thread, e.g. on one port with
// reuse_port) that hand their sends to each other directly, beside the broker.
// Siblings then reach each other even while Redis is down, as the clients of
// one instance do, and without a round trip through it; what reaches a member
// through the broker from a sibling is ignored, so nothing arrives twice.
//
//   auto group = std::make_shared<mesa::instance_group>();
//   opts.group = group;  // the same group in every instance's options
//
// Thread-safety: members join, leave and relay from their own threads; every
// call is safe from any thread. Members must share the namespace.
#include <algorithm>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <mesa/envelope.hpp>

namespace mesa {

class instance_group {
public:
    /// Hands an envelope to a member; the member runs it on its own thread.
    using deliver_fn = std::function<void(std::shared_ptr<envelope const> const&)>;

    instance_group() = default;
    instance_group(instance_group const&) = delete;
    instance_group& operator=(instance_group const&) = delete;

    /// Adds the instance `id`; it stays a member while the returned handle lives.
    [[nodiscard]] std::shared_ptr<void> join(std::string id, deliver_fn deliver) {
        auto m = std::make_shared<member>(member{std::move(id), std::move(deliver)});
        {
            std::lock_guard lock(mutex_);
            members_.push_back(m);
        }
        return std::shared_ptr<void>(nullptr, [this, m](void*) {
            std::lock_guard lock(mutex_);
            members_.erase(std::remove(members_.begin(), members_.end(), m), members_.end());
        });
    }

    /// True when `origin` is the id of a member.
    bool contains(std::string_view origin) const {
        std::lock_guard lock(mutex_);
        for (auto const& m : members_)
            if (m->id == origin) return true;
        return false;
    }

    /// Hands `e` to every member but `from`: one envelope shared by all.
    void relay(std::string_view from, std::shared_ptr<envelope const> const& e) const {
        std::lock_guard lock(mutex_);
        for (auto const& m : members_)
            if (m->id != from) m->deliver(e);
    }

private:
    struct member {
        std::string id;
        deliver_fn deliver;
    };
    mutable std::mutex mutex_;
    std::vector<std::shared_ptr<member>> members_;
};

}  // namespace mesa
