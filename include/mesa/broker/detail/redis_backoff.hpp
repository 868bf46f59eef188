#pragma once
// The reconnect delay: plain state, no timer, so tests drive it directly.
#include <algorithm>
#include <chrono>

namespace mesa::broker::detail {

/// Doubles from `initial` up to `max` on each failed attempt; reset() after a
/// success starts again from `initial`.
class redis_backoff {
public:
    using duration = std::chrono::milliseconds;

    redis_backoff(duration initial, duration max)
        : initial_(std::max(initial, duration(1))), max_(std::max(max, initial_)), next_(initial_) {}

    /// The delay before the next attempt.
    duration next() noexcept {
        auto const now = next_;
        next_ = std::min(max_, next_ * 2);
        return now;
    }

    void reset() noexcept { next_ = initial_; }

private:
    duration initial_, max_, next_;
};

}  // namespace mesa::broker::detail
