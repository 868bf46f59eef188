#pragma once
// heartbeat: detects dead connections. One sweep per interval serves every
// connection (no timer per connection). Each sweep, per client: if an op 11
// arrived since the last op 1 (or this is its first beat) send op 1 `{}` and
// reset the attempts; otherwise count an attempt, close with
// close_code::heartbeat_timeout past max_attempts, else send op 1
// `{tries, max}` (PROTOCOL.md, "Heartbeat").
#include <mesa/detail/config.hpp>  // first: the macros Asio and websocketpp need

#include <asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include <mesa/close_code.hpp>
#include <mesa/feature/hooks.hpp>
#include <mesa/opcode.hpp>

namespace mesa {

struct heartbeat {
    struct options {
        bool enabled = true;
        std::chrono::milliseconds interval{10000};
        unsigned max_attempts = 3;
    };
    struct state {
        std::uint16_t attempts = 0;
        bool acked = false;   // an op 11 arrived since the last op 1
        bool beaten = false;  // at least one op 1 was sent
    };

    /// What one beat does to one client; pure, so tests drive it directly.
    enum class action { beat, retry, close };
    static action next(state& s, unsigned max_attempts) {
        if (!s.beaten || s.acked) {
            s.beaten = true;
            s.acked = false;
            s.attempts = 0;
            return action::beat;
        }
        if (++s.attempts > max_attempts) return action::close;
        return action::retry;
    }

    template <class Server>
    class component : public feature::hooks {
    public:
        component(Server& server, options const& o) : server_(&server), options_(o) {}

        void on_start() {
            if (!options_.enabled || options_.interval.count() <= 0) return;
            timer_ = std::make_unique<asio::steady_timer>(server_->context());
            arm();
        }
        void on_stop() {
            if (timer_) timer_->cancel();
        }
        void on_hello(json::object& d, json::array&) const {
            if (options_.enabled) d["c_heartbeat_interval"] = options_.interval.count();
        }
        template <class Client>
        bool on_message(Client& c, message& m) {
            if (m.op != opcode::heartbeat_ack || !options_.enabled) return false;
            c.template state<heartbeat>().acked = true;
            return true;
        }

        /// One beat for every client (run by the timer; public for tests).
        void sweep() {
            message const beat(opcode::heartbeat, {});
            auto const beat_frame = server_->prepare(beat);
            std::map<unsigned, std::pair<message, typename Server::frame>> retries;  // one frame per try count
            for (auto const& c : server_->clients()) {
                auto& s = c->template state<heartbeat>();
                switch (next(s, options_.max_attempts)) {
                    case action::beat:
                        server_->deliver(*c, beat, beat_frame);
                        break;
                    case action::retry: {
                        auto it = retries.find(s.attempts);
                        if (it == retries.end()) {
                            message m(opcode::heartbeat, {{"tries", s.attempts}, {"max", options_.max_attempts}});
                            auto f = server_->prepare(m);
                            it = retries.emplace(s.attempts, std::make_pair(std::move(m), std::move(f))).first;
                        }
                        server_->deliver(*c, it->second.first, it->second.second);
                        break;
                    }
                    case action::close:
                        server_->close(*c, close_code::heartbeat_timeout, "heartbeat timeout");
                        break;
                }
            }
        }

    private:
        void arm() {
            timer_->expires_after(options_.interval);
            timer_->async_wait([this](std::error_code ec) {
                if (ec) return;
                sweep();
                arm();
            });
        }

        Server* server_;
        options options_;
        std::unique_ptr<asio::steady_timer> timer_;
    };
};

}  // namespace mesa
