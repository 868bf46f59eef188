#pragma once
// The embedded broker: the whole broker interface in process memory.
//
// Several servers (on one thread or on several) that share one memory::hub
// form a cluster exactly as Redis would join them: publications reach every
// subscriber, sets/counters/backlogs are shared.
//
//   auto hub = std::make_shared<mesa::broker::memory::hub>();
//   server a{ioc_a, {.broker = {hub}}}, b{ioc_b, {.broker = {hub}}};
//
// Thread-safety: a hub may be shared by brokers on different threads; one
// memory broker belongs to its executor's thread.
#include <mesa/detail/config.hpp>  // first: the macros Asio and websocketpp need

#include <asio/any_io_executor.hpp>
#include <asio/post.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <boost/json.hpp>

#include <mesa/broker/completion.hpp>
#include <mesa/keys.hpp>

namespace mesa::broker {

class memory {
public:
    /// The shared state of one cluster.
    class hub {
    public:
        hub() = default;
        hub(hub const&) = delete;
        hub& operator=(hub const&) = delete;

    private:
        friend class memory;
        struct subscriber {
            asio::any_io_executor executor;
            std::weak_ptr<channel_handler> handler;
        };
        std::mutex mutex_;
        std::unordered_map<std::string, std::vector<subscriber>> channels_;
        std::unordered_map<std::string, std::set<std::string>> sets_;
        std::unordered_map<std::string, std::int64_t> counters_;
        std::unordered_map<std::string, std::unordered_map<std::string, std::vector<std::string>>> backlogs_;
        // Exact presence, per namespace (its mesa::keys::presence() name).
        struct instance_record {
            std::int64_t epoch = 0;
            std::chrono::steady_clock::time_point alive_until;
            std::int64_t connections = 0;
            std::map<std::string, std::int64_t> sockets;  // id -> sockets on this instance
        };
        struct presence_table {
            std::map<std::string, std::int64_t> sockets;  // id -> sockets in the cluster
            std::map<std::string, instance_record> instances;
            std::int64_t epochs = 0;
            std::map<std::string, std::map<std::int64_t, std::string>> outboxes;  // id -> seq -> message
            std::map<std::string, std::int64_t> attempts;  // id -> unconfirmed redeliveries in a row
            std::int64_t seqs = 0;
        };
        std::unordered_map<std::string, presence_table> presence_;
        // Idempotency keys (mesa::keys::idempotency names) -> `~<token>` or
        // `=<result>`, each with its deadline; past it the key is free.
        struct idempotency_record {
            std::string value;
            std::chrono::steady_clock::time_point expires;
        };
        std::unordered_map<std::string, idempotency_record> idempotency_;
        std::multimap<std::chrono::steady_clock::time_point, std::string> idempotency_deadlines_;
    };

    struct options {
        /// The cluster to join; null gives this broker a hub of its own.
        std::shared_ptr<hub> cluster;
    };

    explicit memory(asio::any_io_executor executor, options const& opts = {})
        : executor_(std::move(executor)), hub_(opts.cluster ? opts.cluster : std::make_shared<hub>()) {}

    memory(memory const&) = delete;
    memory& operator=(memory const&) = delete;

    std::shared_ptr<hub> const& cluster() const noexcept { return hub_; }
    /// Always reachable (health checks ask every broker).
    bool connected() const noexcept { return true; }
    /// Never called: process memory cannot be lost while the process lives.
    void on_restored(std::function<void()>) {}
    /// Never called: subscriptions in process memory are never lost.
    void on_resubscribed(std::function<void()>) {}

    /// Delivers every later publication on `channel` to `handler` on this
    /// broker's executor, until the broker is destroyed.
    void subscribe(std::string const& channel, channel_handler handler) {
        auto h = std::make_shared<channel_handler>(std::move(handler));
        subscriptions_.push_back(h);
        std::lock_guard lock(hub_->mutex_);
        hub_->channels_[channel].push_back({executor_, h});
    }

    /// Publishes to every subscriber of the cluster, this broker included;
    /// `done` learns it was taken.
    void publish(std::string const& channel, std::string payload, completion done = {}) {
        {
            std::lock_guard lock(hub_->mutex_);
            publish_locked(channel, std::move(payload));
        }
        complete(std::move(done));
    }

    void set_add(std::string const& key, std::string const& member, completion done = {}) {
        {
            std::lock_guard lock(hub_->mutex_);
            hub_->sets_[key].insert(member);
        }
        complete(std::move(done));
    }

    void set_remove(std::string const& key, std::string const& member, completion done = {}) {
        {
            std::lock_guard lock(hub_->mutex_);
            if (auto it = hub_->sets_.find(key); it != hub_->sets_.end()) it->second.erase(member);
        }
        complete(std::move(done));
    }

    void set_contains(std::string const& key, std::vector<std::string> const& members, contains_handler done) {
        std::vector<bool> found(members.size(), false);
        {
            std::lock_guard lock(hub_->mutex_);
            if (auto it = hub_->sets_.find(key); it != hub_->sets_.end())
                for (std::size_t i = 0; i < members.size(); ++i) found[i] = it->second.count(members[i]) > 0;
        }
        post([done = std::move(done), found = std::move(found)] { done({}, found); });
    }

    void set_members(std::string const& key, members_handler done) {
        std::vector<std::string> members;
        {
            std::lock_guard lock(hub_->mutex_);
            if (auto it = hub_->sets_.find(key); it != hub_->sets_.end())
                members.assign(it->second.begin(), it->second.end());
        }
        post([done = std::move(done), members = std::move(members)] { done({}, members); });
    }

    void counter_add(std::string const& key, std::int64_t delta, completion done = {}) {
        {
            std::lock_guard lock(hub_->mutex_);
            hub_->counters_[key] += delta;
        }
        complete(std::move(done));
    }

    void counter_get(std::string const& key, count_handler done) {
        std::int64_t value = 0;
        {
            std::lock_guard lock(hub_->mutex_);
            if (auto it = hub_->counters_.find(key); it != hub_->counters_.end()) value = it->second;
        }
        post([done = std::move(done), value] { done({}, value); });
    }

    /// Appends `message` to the backlog stored under `hash`/`field`, dropping
    /// the oldest entries past `max_entries` (0: unbounded). `done` receives
    /// how many entries were dropped.
    void backlog_append(std::string const& hash, std::string const& field, std::string message, std::size_t max_entries,
                        count_handler done = {}) {
        std::int64_t dropped = 0;
        {
            std::lock_guard lock(hub_->mutex_);
            dropped = append_locked(hash, field, {std::move(message)}, max_entries, false);
        }
        if (done) post([done = std::move(done), dropped] { done({}, dropped); });
    }

    /// Removes and returns the whole backlog of `hash`/`field`, atomically.
    void backlog_take(std::string const& hash, std::string const& field, take_handler done) {
        std::vector<std::string> taken;
        {
            std::lock_guard lock(hub_->mutex_);
            if (auto h = hub_->backlogs_.find(hash); h != hub_->backlogs_.end()) {
                if (auto f = h->second.find(field); f != h->second.end()) {
                    taken = std::move(f->second);
                    h->second.erase(f);
                }
            }
        }
        post([done = std::move(done), taken = std::move(taken)] { done({}, taken); });
    }

    // ---- exact presence (requirements.hpp): the same steps as the Redis scripts
    using socket_counts = std::vector<std::pair<std::string, std::int64_t>>;

    void presence_register(mesa::keys const& k, std::string const& instance, std::chrono::milliseconds ttl,
                           std::int64_t connections, socket_counts const& ids, count_handler done) {
        std::int64_t epoch = 0;
        {
            std::lock_guard lock(hub_->mutex_);
            auto& table = hub_->presence_[k.presence()];
            withdraw(k, table, instance);
            auto& record = table.instances[instance];
            record.epoch = epoch = ++table.epochs;
            record.alive_until = std::chrono::steady_clock::now() + ttl;
            record.connections = connections;
            hub_->counters_[k.connected_clients_count()] += connections;
            for (auto const& [id, n] : ids) {
                record.sockets[id] += n;
                table.sockets[id] += n;
                hub_->sets_[k.connected_clients()].insert(id);
            }
        }
        post([done = std::move(done), epoch] { done({}, epoch); });
    }

    void presence_change(mesa::keys const& k, std::string const& instance, std::int64_t epoch,
                         std::int64_t connections_delta, std::string const& id, std::int64_t sockets_delta,
                         count_handler done) {
        std::int64_t result = 0;
        {
            std::lock_guard lock(hub_->mutex_);
            auto& table = hub_->presence_[k.presence()];
            auto it = table.instances.find(instance);
            if (it == table.instances.end() || it->second.epoch != epoch) {
                result = -1;
            } else {
                auto& record = it->second;
                record.connections += connections_delta;
                hub_->counters_[k.connected_clients_count()] += connections_delta;
                if (!id.empty() && sockets_delta != 0) {
                    if ((record.sockets[id] += sockets_delta) <= 0) record.sockets.erase(id);
                    result = table.sockets[id] += sockets_delta;
                    if (result <= 0) {
                        result = 0;
                        offline_locked(k, table, id);
                    } else if (sockets_delta > 0) {
                        hub_->sets_[k.connected_clients()].insert(id);
                    }
                }
            }
        }
        if (done) post([done = std::move(done), result] { done({}, result); });
    }

    void presence_admit(mesa::keys const& k, std::string const& instance, std::int64_t epoch, std::string const& id,
                        std::int64_t max_sockets, count_handler done) {
        std::int64_t result = -1;
        {
            std::lock_guard lock(hub_->mutex_);
            auto& table = hub_->presence_[k.presence()];
            auto it = table.instances.find(instance);
            if (it != table.instances.end() && it->second.epoch == epoch) {
                auto& held = table.sockets[id];
                if (held >= max_sockets) {
                    if (held == 0) table.sockets.erase(id);
                    result = -2;
                } else {
                    ++it->second.sockets[id];
                    result = ++held;
                    hub_->sets_[k.connected_clients()].insert(id);
                }
            }
        }
        if (done) post([done = std::move(done), result] { done({}, result); });
    }

    void presence_renew(mesa::keys const& k, std::string const& instance, std::int64_t epoch,
                        std::chrono::milliseconds ttl, count_handler done) {
        std::int64_t result = -1;
        {
            std::lock_guard lock(hub_->mutex_);
            auto& table = hub_->presence_[k.presence()];
            auto it = table.instances.find(instance);
            if (it != table.instances.end() && it->second.epoch == epoch) {
                it->second.alive_until = std::chrono::steady_clock::now() + ttl;
                for (auto const& entry : it->second.sockets) hub_->sets_[k.connected_clients()].insert(entry.first);
                result = 1;
            }
        }
        if (done) post([done = std::move(done), result] { done({}, result); });
    }

    void presence_query(mesa::keys const& k, std::vector<std::string> const& ids, counts_handler done) {
        std::vector<std::int64_t> counts;
        {
            std::lock_guard lock(hub_->mutex_);
            auto& table = hub_->presence_[k.presence()];
            auto const& online = hub_->sets_[k.connected_clients()];
            for (auto const& id : ids) {
                auto it = table.sockets.find(id);
                std::int64_t n = it == table.sockets.end() ? 0 : it->second;
                counts.push_back(n > 0 ? n : online.count(id) ? -1 : 0);
            }
        }
        if (done) post([done = std::move(done), counts = std::move(counts)]() mutable { done({}, std::move(counts)); });
    }

    void presence_reap(mesa::keys const& k, members_handler done) {
        std::vector<std::string> reaped;
        {
            std::lock_guard lock(hub_->mutex_);
            auto& table = hub_->presence_[k.presence()];
            auto const now = std::chrono::steady_clock::now();
            for (auto const& [instance, record] : table.instances)
                if (record.alive_until <= now) reaped.push_back(instance);
            for (auto const& instance : reaped) withdraw(k, table, instance);
        }
        if (done) post([done = std::move(done), reaped = std::move(reaped)] { done({}, reaped); });
    }

    void presence_withdraw(mesa::keys const& k, std::string const& instance, std::int64_t epoch, count_handler done) {
        std::int64_t result = -1;
        {
            std::lock_guard lock(hub_->mutex_);
            auto& table = hub_->presence_[k.presence()];
            auto it = table.instances.find(instance);
            if (it != table.instances.end() && it->second.epoch == epoch) {
                withdraw(k, table, instance);
                result = 1;
            }
        }
        if (done) post([done = std::move(done), result] { done({}, result); });
    }

    // ---- lossless sync (requirements.hpp): the same steps as the Redis scripts
    void sync_route(mesa::keys const& k, std::string const& message, std::vector<std::string> const& ids,
                    std::size_t max_backlog, std::string const& origin, route_handler done) {
        route_result r;
        {
            std::lock_guard lock(hub_->mutex_);
            r = route_locked(k, message, ids, max_backlog, origin);
        }
        post([done = std::move(done), r = std::move(r)]() mutable { done({}, std::move(r)); });
    }

    // ---- idempotent sends (requirements.hpp): the key is claimed under the
    // same lock as the store or publish, as the Redis scripts do in one step
    void idempotent_route(mesa::keys const& k, idempotency_claim const& claim, std::string const& message,
                          std::vector<std::string> const& ids, std::size_t max_backlog, std::string const& origin,
                          route_once_handler done) {
        claim_result c;
        route_result r;
        {
            std::lock_guard lock(hub_->mutex_);
            c = claim_locked(claim);
            if (c.status == claim_result::state::claimed) r = route_locked(k, message, ids, max_backlog, origin);
        }
        post([done = std::move(done), c = std::move(c), r = std::move(r)]() mutable {
            done({}, std::move(c), std::move(r));
        });
    }

    void idempotent_publish(idempotency_claim const& claim, std::string const& channel, std::string payload,
                            claim_handler done) {
        claim_result c;
        {
            std::lock_guard lock(hub_->mutex_);
            c = claim_locked(claim);
            if (c.status == claim_result::state::claimed) publish_locked(channel, std::move(payload));
        }
        post([done = std::move(done), c = std::move(c)]() mutable { done({}, std::move(c)); });
    }

    /// Records `result` under the claimed key for `ttl`, unless another
    /// attempt holds the key now.
    void idempotency_settle(idempotency_claim const& claim, std::string const& result, std::chrono::milliseconds ttl,
                            completion done = {}) {
        {
            std::lock_guard lock(hub_->mutex_);
            auto const now = expire_locked();
            auto it = hub_->idempotency_.find(claim.key);
            if (it == hub_->idempotency_.end() || it->second.value == '~' + claim.token)
                keep_locked(claim.key, '=' + result, now + ttl);
        }
        complete(std::move(done));
    }

    /// Frees the claimed key, unless another attempt holds it now.
    void idempotency_release(idempotency_claim const& claim, completion done = {}) {
        {
            std::lock_guard lock(hub_->mutex_);
            expire_locked();
            auto it = hub_->idempotency_.find(claim.key);
            if (it != hub_->idempotency_.end() && it->second.value == '~' + claim.token) hub_->idempotency_.erase(it);
        }
        complete(std::move(done));
    }

    void sync_take(mesa::keys const& k, std::string const& id, std::size_t max_attempts, sync_take_handler done) {
        take_result r;
        {
            std::lock_guard lock(hub_->mutex_);
            auto& table = hub_->presence_[k.presence()];
            auto& outbox = table.outboxes[id];
            std::vector<std::string> texts;
            auto& backlogs = hub_->backlogs_[k.undelivered_messages()];
            if (auto it = backlogs.find(id); it != backlogs.end()) {
                texts = std::move(it->second);
                backlogs.erase(it);
            }
            if (!texts.empty() || !outbox.empty()) {
                auto& attempts = table.attempts[id];
                if (max_attempts && ++attempts > static_cast<std::int64_t>(max_attempts)) {
                    table.attempts.erase(id);
                    r.given_up = true;
                    for (auto& entry : outbox) r.messages.push_back({0, std::move(entry.second), false});
                    for (auto& t : texts) r.messages.push_back({0, std::move(t), false});
                    outbox.clear();
                } else {
                    for (auto const& [seq, text] : outbox) r.messages.push_back({seq, text, true});
                    for (auto& t : texts) {
                        auto const seq = ++table.seqs;
                        outbox.emplace(seq, t);
                        r.messages.push_back({seq, std::move(t), false});
                    }
                }
            }
            if (outbox.empty()) table.outboxes.erase(id);
        }
        post([done = std::move(done), r = std::move(r)]() mutable { done({}, std::move(r)); });
    }

    void sync_confirm(mesa::keys const& k, std::string const& id, std::vector<std::int64_t> const& seqs,
                      completion done = {}) {
        {
            std::lock_guard lock(hub_->mutex_);
            auto& table = hub_->presence_[k.presence()];
            table.attempts.erase(id);
            if (auto it = table.outboxes.find(id); it != table.outboxes.end()) {
                for (auto seq : seqs) it->second.erase(seq);
                if (it->second.empty()) table.outboxes.erase(it);
            }
        }
        complete(std::move(done));
    }

private:
    // The hub's lock is held: one send's store-or-deliver (sync_route).
    route_result route_locked(mesa::keys const& k, std::string const& message, std::vector<std::string> const& ids,
                              std::size_t max_backlog, std::string const& origin) {
        route_result r;
        auto& table = hub_->presence_[k.presence()];
        auto const& online = hub_->sets_[k.connected_clients()];
        r.seq = ++table.seqs;
        for (auto const& id : ids) {
            auto const held = table.sockets.find(id);
            bool const ours = held != table.sockets.end() && held->second > 0;
            if (ours || online.count(id)) {
                r.published.push_back(id);
                if (!ours) continue;
                auto& box = table.outboxes[id];
                box.emplace(r.seq, message);
                if (max_backlog && box.size() > max_backlog) {
                    auto const n = box.size() - max_backlog;
                    box.erase(box.begin(), std::next(box.begin(), static_cast<std::ptrdiff_t>(n)));
                    r.dropped.emplace_back(id, static_cast<std::int64_t>(n));
                }
            } else {
                auto const n = append_locked(k.undelivered_messages(), id, {message}, max_backlog, false);
                r.stored.push_back(id);
                if (n > 0) r.dropped.emplace_back(id, n);
            }
        }
        if (!r.published.empty()) {
            boost::json::object e;
            e["recipients"] = boost::json::array(r.published.begin(), r.published.end());
            e["origin"] = origin;
            e["seq"] = std::to_string(r.seq);
            // The message text goes in verbatim, as the Redis script splices it.
            auto text = boost::json::serialize(e);
            text.insert(1, "\"message\":" + message + ",");
            publish_locked(k.ws(), std::move(text));
        }
        return r;
    }

    // The hub's lock is held: forgets expired idempotency keys; returns now.
    std::chrono::steady_clock::time_point expire_locked() {
        auto const now = std::chrono::steady_clock::now();
        auto& deadlines = hub_->idempotency_deadlines_;
        while (!deadlines.empty() && deadlines.begin()->first <= now) {
            auto it = hub_->idempotency_.find(deadlines.begin()->second);
            // A key kept again since has a later deadline of its own.
            if (it != hub_->idempotency_.end() && it->second.expires <= now) hub_->idempotency_.erase(it);
            deadlines.erase(deadlines.begin());
        }
        return now;
    }

    void keep_locked(std::string const& key, std::string value, std::chrono::steady_clock::time_point expires) {
        hub_->idempotency_[key] = {std::move(value), expires};
        hub_->idempotency_deadlines_.emplace(expires, key);
    }

    // The hub's lock is held: what the key holds, or claims it for `claim`'s attempt.
    claim_result claim_locked(idempotency_claim const& claim) {
        auto const now = expire_locked();
        auto it = hub_->idempotency_.find(claim.key);
        if (it == hub_->idempotency_.end()) {
            keep_locked(claim.key, '~' + claim.token, now + claim.in_flight_ttl);
            return {};
        }
        if (it->second.value.front() == '=') return {claim_result::state::done, it->second.value.substr(1)};
        return {claim_result::state::in_flight, {}};
    }

    void publish_locked(std::string const& channel, std::string payload) {
        auto it = hub_->channels_.find(channel);
        if (it == hub_->channels_.end()) return;
        auto shared = std::make_shared<std::string const>(std::move(payload));
        auto& subs = it->second;
        subs.erase(std::remove_if(subs.begin(), subs.end(), [](auto const& s) { return s.handler.expired(); }),
                   subs.end());
        for (auto const& s : subs) {
            asio::post(s.executor, [weak = s.handler, shared] {
                if (auto h = weak.lock()) (*h)(*shared);
            });
        }
    }

    // The hub's lock is held; returns how many of the oldest entries were dropped.
    std::int64_t append_locked(std::string const& hash, std::string const& field, std::vector<std::string> messages,
                               std::size_t max_entries, bool front) {
        auto& list = hub_->backlogs_[hash][field];
        list.insert(front ? list.begin() : list.end(), std::make_move_iterator(messages.begin()),
                    std::make_move_iterator(messages.end()));
        if (!max_entries || list.size() <= max_entries) return 0;
        auto const dropped = static_cast<std::int64_t>(list.size() - max_entries);
        list.erase(list.begin(), list.begin() + dropped);
        return dropped;
    }

    // An id's last socket is gone: its unconfirmed messages go back first in its backlog.
    void offline_locked(mesa::keys const& k, hub::presence_table& table, std::string const& id) {
        table.sockets.erase(id);
        hub_->sets_[k.connected_clients()].erase(id);
        auto it = table.outboxes.find(id);
        if (it == table.outboxes.end()) return;
        std::vector<std::string> texts;
        for (auto& entry : it->second) texts.push_back(std::move(entry.second));
        table.outboxes.erase(it);
        append_locked(k.undelivered_messages(), id, std::move(texts), 0, true);
    }

    // Takes `instance`'s contribution out of the cluster's state; the hub's lock is held.
    void withdraw(mesa::keys const& k, hub::presence_table& table, std::string const& instance) {
        auto it = table.instances.find(instance);
        if (it == table.instances.end()) return;
        for (auto const& [id, n] : it->second.sockets)
            if ((table.sockets[id] -= n) <= 0) offline_locked(k, table, id);
        hub_->counters_[k.connected_clients_count()] -= it->second.connections;
        table.instances.erase(it);
    }

    void complete(completion done) {
        if (done) post([done = std::move(done)] { done({}); });
    }

    // Completions never run after the broker is gone: its owner may be too.
    template <class F>
    void post(F&& f) {
        asio::post(executor_, [alive = std::weak_ptr<bool>(alive_), f = std::forward<F>(f)]() mutable {
            if (!alive.expired()) f();
        });
    }

    asio::any_io_executor executor_;
    std::shared_ptr<hub> hub_;
    // Owned here, referenced weakly by the hub: destroying the broker ends its
    // subscriptions without touching the hub's lock.
    std::vector<std::shared_ptr<channel_handler>> subscriptions_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace mesa::broker
