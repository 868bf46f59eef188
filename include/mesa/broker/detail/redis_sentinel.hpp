#pragma once
// Finding and following the master of a Redis Sentinel deployment, as plain
// state: events in (a sentinel's answer, the master connections up or down,
// a READONLY reply, a +switch-master event, the timer), actions out (ask a
// sentinel, connect to a master, arm the timer, fail the commands waiting,
// watch a sentinel's events, log). broker::redis runs it on Asio; tests drive
// it without sockets.
//
//   ask sentinels in turn (the last one that answered first)
//     an address   -> connect there; ROLE must say master on every connection
//     all nil      -> "no sentinel knows a master named ...": fail, wait, ask again
//     all down     -> "no sentinel reachable": fail, wait, ask again
//   connected: a lost connection, a READONLY reply or +switch-master -> ask
//   (or connect to the address +switch-master names) at once; an address that
//   does not work (refused, or ROLE is not master) -> wait the backoff, ask again.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <mesa/broker/detail/redis_backoff.hpp>
#include <mesa/broker/detail/redis_error.hpp>
#include <mesa/broker/detail/redis_uri.hpp>

namespace mesa::broker::detail {

class redis_sentinel {
public:
    using duration = std::chrono::milliseconds;

    struct action {
        enum class kind {
            ask,           // ask `sentinel` (query id `query`) for the master's address
            connect,       // (re)connect every master connection to `master`
            wait,          // arm the timer for `delay` (replaces an armed one), then call timer()
            fail_waiting,  // fail the commands waiting for a master with `error`; refuse new ones until connect
            watch,         // after `delay`, follow `sentinel`'s +switch-master events (replacing the watched one)
            log,           // report `text`
        };
        explicit action(kind k) : what(k) {}
        kind what;
        std::size_t sentinel = 0;
        std::uint64_t query = 0;
        redis_address master;
        duration delay{0};
        redis_errc error = redis_errc::disconnected;
        std::string text;
    };
    using actions = std::vector<action>;

    enum class phase { idle, asking, connecting, connected, waiting };

    redis_sentinel(std::vector<redis_address> sentinels, std::string master_name, duration backoff_initial,
                   duration backoff_max)
        : sentinels_(std::move(sentinels)),
          name_(std::move(master_name)),
          backoff_(backoff_initial, backoff_max),
          watch_backoff_(backoff_initial, backoff_max) {}

    phase current() const noexcept { return phase_; }
    /// The master connected to (or being connected to), if any.
    std::optional<redis_address> const& master() const noexcept { return master_; }
    std::string const& master_name() const noexcept { return name_; }
    std::vector<redis_address> const& sentinels() const noexcept { return sentinels_; }

    actions start() {
        actions out;
        if (phase_ != phase::idle) return out;
        round(out);
        out.push_back(watch_action(0, duration(0)));
        return out;
    }

    /// Sentinel query `query` answered: the master's address, or none (it knows no such name).
    actions answered(std::uint64_t query, std::optional<redis_address> master) {
        actions out;
        if (phase_ != phase::asking || query != query_) return out;
        if (!master) {
            ++unknown_;
            next(out);
            return out;
        }
        preferred_ = asking_;
        connect(std::move(*master), out);
        return out;
    }

    /// Sentinel query `query` failed (unreachable, timed out, refused the password...).
    actions unreachable(std::uint64_t query, std::string const& why) {
        actions out;
        if (phase_ != phase::asking || query != query_) return out;
        last_error_ = sentinels_[asking_].describe() + ": " + why;
        next(out);
        return out;
    }

    /// Every master connection is ready (its ROLE said master).
    actions master_ready() {
        actions out;
        if (phase_ != phase::connecting) return out;
        phase_ = phase::connected;
        backoff_.reset();
        log(out, "master '" + name_ + "' is " + master_->describe());
        return out;
    }

    /// A master connection was lost, or could not connect, or found a replica.
    actions master_down(std::string const& why) {
        actions out;
        if (phase_ == phase::connected) {
            log(out, "master " + master_->describe() + " lost (" + why + "); asking the sentinels");
            round(out);
        } else if (phase_ == phase::connecting) {
            auto const delay = backoff_.next();
            log(out, "master " + master_->describe() + " named by the sentinels is not usable (" + why +
                         "); asking again in " + std::to_string(delay.count()) + " ms");
            phase_ = phase::waiting;
            out.push_back(fail_action(redis_errc::disconnected));
            out.push_back(wait_action(delay));
        }
        return out;
    }

    /// The master answered -READONLY: it was demoted to a replica.
    actions readonly() {
        actions out;
        if (phase_ != phase::connected && phase_ != phase::connecting) return out;
        log(out, "master " + master_->describe() + " answered READONLY (it is a replica now); asking the sentinels");
        round(out);
        return out;
    }

    /// A +switch-master event: "<name> <old ip> <old port> <new ip> <new port>".
    actions switched(std::string_view payload) {
        actions out;
        std::vector<std::string_view> words;
        while (!payload.empty()) {
            auto const space = payload.find(' ');
            if (space != 0) words.push_back(payload.substr(0, space));
            if (space == std::string_view::npos) break;
            payload.remove_prefix(space + 1);
        }
        if (words.size() != 5 || words[0] != name_ || phase_ == phase::idle) return out;
        redis_address to;
        to.host = std::string(words[3]);
        unsigned port = 0;
        for (char c : words[4]) {
            if (c < '0' || c > '9' || port > 65535) return out;
            port = port * 10 + static_cast<unsigned>(c - '0');
        }
        if (port == 0 || port > 65535) return out;
        to.port = static_cast<std::uint16_t>(port);
        if (master_ && *master_ == to && (phase_ == phase::connected || phase_ == phase::connecting)) return out;
        log(out, "the sentinels switched master '" + name_ + "' to " + to.describe());
        connect(std::move(to), out);
        return out;
    }

    actions timer() {
        actions out;
        if (phase_ == phase::waiting) round(out);
        return out;
    }

    /// The watched sentinel's subscription is confirmed.
    actions watch_ready() {
        watch_backoff_.reset();
        return {};
    }

    /// The watched sentinel's connection was lost or could not connect: watch the next one.
    actions watch_down() {
        watched_ = (watched_ + 1) % sentinels_.size();
        return {watch_action(watched_, watch_backoff_.next())};
    }

private:
    void log(actions& out, std::string text) {
        action a{action::kind::log};
        a.text = "redis sentinel: " + std::move(text);
        out.push_back(std::move(a));
    }
    static action wait_action(duration delay) {
        action a{action::kind::wait};
        a.delay = delay;
        return a;
    }
    static action fail_action(redis_errc error) {
        action a{action::kind::fail_waiting};
        a.error = error;
        return a;
    }
    action watch_action(std::size_t sentinel, duration delay) {
        action a{action::kind::watch};
        a.sentinel = watched_ = sentinel;
        a.delay = delay;
        return a;
    }

    void connect(redis_address to, actions& out) {
        phase_ = phase::connecting;
        master_ = std::move(to);
        action a{action::kind::connect};
        a.master = *master_;
        out.push_back(std::move(a));
    }

    // A new round: every sentinel once at most, the last that answered first.
    void round(actions& out) {
        phase_ = phase::asking;
        asked_ = 0;
        unknown_ = 0;
        last_error_.clear();
        asking_ = preferred_ % sentinels_.size();
        ask(out);
    }

    void ask(actions& out) {
        action a{action::kind::ask};
        a.sentinel = asking_;
        a.query = ++query_;
        out.push_back(std::move(a));
    }

    void next(actions& out) {
        if (++asked_ < sentinels_.size()) {
            asking_ = (asking_ + 1) % sentinels_.size();
            return ask(out);
        }
        phase_ = phase::waiting;
        auto const delay = backoff_.next();
        auto const again = "; asking again in " + std::to_string(delay.count()) + " ms";
        if (unknown_ > 0) {
            log(out, "no sentinel knows a master named '" + name_ + "' (" + std::to_string(unknown_) + " of " +
                         std::to_string(sentinels_.size()) + " answered; check the master name)" + again);
            out.push_back(fail_action(redis_errc::master_unknown));
        } else {
            log(out, "no sentinel reachable (last: " + last_error_ + ")" + again);
            out.push_back(fail_action(redis_errc::disconnected));
        }
        out.push_back(wait_action(delay));
    }

    std::vector<redis_address> sentinels_;
    std::string name_;
    redis_backoff backoff_, watch_backoff_;
    phase phase_ = phase::idle;
    std::optional<redis_address> master_;
    std::size_t preferred_ = 0;  // the sentinel that answered last
    std::size_t asking_ = 0;
    std::size_t asked_ = 0;    // in this round
    std::size_t unknown_ = 0;  // sentinels of this round that knew no such master
    std::string last_error_;
    std::uint64_t query_ = 0;
    std::size_t watched_ = 0;
};

}  // namespace mesa::broker::detail
