#pragma once
// rate_limit: a client may send `messages_per_second` frames on average and
// `burst` at once (a token bucket per connection); one more closes it with
// close_code::rate_limited (4003) and an error event. Every message counts,
// heartbeat answers and authentication included, and so do pings and pongs
// (a ping flood costs the thread's other clients as a message flood does).
// A fragmented message counts once, whatever its fragments: clients that
// stream a message in 4 KiB fragments are not limited for it, and its size
// is bounded by max_frame_bytes.
#include <chrono>
#include <cstdint>
#include <sstream>

#include <mesa/close_code.hpp>
#include <mesa/feature/hooks.hpp>

namespace mesa {

struct rate_limit {
    struct options {
        bool enabled = true;
        // Chat-like traffic stays far below; a runaway or hostile client hits it fast.
        double messages_per_second = 50;
        double burst = 100;
    };
    struct state {
        float tokens = -1;  // < 0: not started
        std::chrono::steady_clock::time_point refilled;
    };

    /// Takes one token; false when the bucket is empty. Pure, for tests.
    static bool take(state& s, options const& o, std::chrono::steady_clock::time_point now) {
        if (s.tokens < 0) {
            s.tokens = static_cast<float>(o.burst);
            s.refilled = now;
        }
        std::chrono::duration<double> elapsed = now - s.refilled;
        s.refilled = now;
        double tokens = s.tokens + elapsed.count() * o.messages_per_second;
        if (tokens > o.burst) tokens = o.burst;
        if (tokens < 1) {
            s.tokens = static_cast<float>(tokens);
            return false;
        }
        s.tokens = static_cast<float>(tokens - 1);
        return true;
    }

    template <class Server>
    class component : public feature::hooks {
    public:
        component(Server& server, options const& o) : server_(&server), options_(o) {}

        template <class Client>
        bool on_frame(Client& c) {
            if (!options_.enabled) return true;
            if (take(c.template state<rate_limit>(), options_, std::chrono::steady_clock::now())) return true;
            std::ostringstream what;  // "50", "2.5": not to_string's "50.000000"
            what << "client over " << options_.messages_per_second << " messages per second";
            server_->report(what.str(), c.shared_from_this());
            server_->close(c, close_code::rate_limited, "rate limit exceeded");
            return false;
        }

    private:
        Server* server_;
        options options_;
    };
};

}  // namespace mesa
