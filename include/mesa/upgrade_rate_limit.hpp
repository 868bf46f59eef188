#pragma once
// upgrade_rate_limit: paces WebSocket upgrades so a reconnect storm is spread
// instead of piling up. A token bucket: `per_second` upgrades on average,
// `burst` at once; an upgrade over it is refused with HTTP 503 and a
// Retry-After (RFC 9110 §10.2.3) that spreads the refused: each refusal
// reserves the next free slot of the average rate and is told to come back
// then (at most max_retry_after later).
//
//   auto limit = std::make_shared<mesa::upgrade_rate_limit>(10.0, 20);
//   opts.upgrade_limit = limit;  // every server sharing it is paced together
//
// Thread-safety: take() may be called from several threads (the instances of
// one process sharing it).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <mutex>
#include <stdexcept>

namespace mesa {

class upgrade_rate_limit {
public:
    using clock = std::chrono::steady_clock;
    /// The longest Retry-After given, so a storm is not sent an hour away.
    static constexpr std::chrono::seconds max_retry_after{60};

    /// `per_second` > 0 upgrades per second on average, `burst` (>= 1; 0:
    /// the rate, rounded up) at once. Throws std::invalid_argument otherwise.
    upgrade_rate_limit(double per_second, std::size_t burst = 0)
        : per_second_(per_second),
          burst_(burst ? static_cast<double>(burst) : std::max(1.0, std::ceil(per_second))),
          tokens_(burst_) {
        if (!(per_second > 0)) throw std::invalid_argument("mesa: upgrade_rate_limit needs a rate above 0 per second");
    }

    /// Takes a token for one upgrade at `now`: 0 s when admitted, else the
    /// seconds (>= 1) the refused client should wait, for its Retry-After.
    std::chrono::seconds take(clock::time_point now = clock::now()) {
        std::lock_guard lock(mutex_);
        if (started_) {
            auto const elapsed = std::chrono::duration<double>(now - last_).count();
            tokens_ = std::min(burst_, tokens_ + std::max(0.0, elapsed) * per_second_);
        }
        started_ = true;
        last_ = std::max(last_, now);
        if (tokens_ >= 1) {
            tokens_ -= 1;
            return std::chrono::seconds(0);
        }
        // The first token comes back in (1 - tokens) / rate; each refusal
        // waiting meanwhile takes the slot after the previous one's.
        auto const next_token = now + interval((1 - tokens_) / per_second_);
        next_slot_ = std::max(next_slot_ + interval(1 / per_second_), next_token);
        auto const wait = std::chrono::duration<double>(next_slot_ - now).count();
        auto const seconds = static_cast<std::chrono::seconds::rep>(std::ceil(wait));
        return std::clamp(std::chrono::seconds(seconds), std::chrono::seconds(1), max_retry_after);
    }

    double per_second() const noexcept { return per_second_; }
    double burst() const noexcept { return burst_; }

private:
    static clock::duration interval(double seconds) {
        return std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(seconds));
    }

    std::mutex mutex_;
    double per_second_;
    double burst_;
    double tokens_;
    bool started_ = false;
    clock::time_point last_{};
    clock::time_point next_slot_{};
};

}  // namespace mesa
