#pragma once
// message_store (the reference's options.storeMessages): each client keeps
// the messages it sent and received, newest last, up to `max_per_direction`
// each (the oldest go first; the reference keeps them without bound).
//
//   auto const& log = client->state<mesa::message_store>();
//   for (auto const& m : log.received) ...
#include <cstddef>
#include <utility>
#include <vector>

#include <mesa/feature/hooks.hpp>

namespace mesa {

struct message_store {
    struct options {
        bool enabled = true;
        std::size_t max_per_direction = 1000;  // per client; 0: unbounded
    };
    /// The messages of one direction, oldest first. Every connection has two
    /// whether or not the store is enabled, so an empty one allocates nothing
    /// (an empty std::deque allocates about 600 bytes).
    class message_log {
    public:
        using value_type = message;
        using const_iterator = std::vector<message>::const_iterator;

        const_iterator begin() const noexcept { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
        const_iterator end() const noexcept { return items_.end(); }
        std::size_t size() const noexcept { return items_.size() - head_; }
        bool empty() const noexcept { return size() == 0; }
        message const& front() const { return items_[head_]; }
        message const& back() const { return items_.back(); }
        message const& operator[](std::size_t i) const { return items_[head_ + i]; }

        void push_back(message m) { items_.push_back(std::move(m)); }

        /// Drops the oldest message at once; its slot is reclaimed when the
        /// dropped slots are as many as the kept messages, so each message
        /// is moved once per pop on average.
        void pop_front() {
            items_[head_++] = message();
            if (head_ >= size()) {
                items_.erase(items_.begin(), begin());
                head_ = 0;
            }
        }

    private:
        std::vector<message> items_;
        std::size_t head_ = 0;  // dropped slots before the oldest message
    };

    struct state {
        message_log sent;      // by the server to this client
        message_log received;  // from this client
    };

    template <class Server>
    struct component : feature::hooks {
        component(Server&, options const& o) : options_(o) {}

        void on_hello(json::object&, json::array& rules) const {
            if (options_.enabled) rules.emplace_back("store_messages");
        }
        template <class Client>
        void on_sent(Client& c, message const& m) {
            keep(c.template state<message_store>().sent, m);
        }
        template <class Client>
        void on_received(Client& c, message const& m) {
            keep(c.template state<message_store>().received, m);
        }

    private:
        void keep(message_log& list, message const& m) {
            if (!options_.enabled) return;
            list.push_back(m);
            if (options_.max_per_direction && list.size() > options_.max_per_direction) list.pop_front();
        }

        options options_;
    };
};

}  // namespace mesa
