#pragma once
// Helpers to drive an io_context from a test without sleeping blindly.
#include <cstddef>  // before Asio: see <mesa/detail/config.hpp>

#include <asio/io_context.hpp>

#include <chrono>
#include <functional>

namespace mesa::test {

/// Runs every handler that is ready, including those they post.
inline void drain(asio::io_context& ioc) {
    ioc.restart();
    while (ioc.poll() > 0) {
    }
}

/// Runs the io_context until `done()` or `timeout`; false on timeout.
inline bool run_until(asio::io_context& ioc, std::function<bool()> const& done,
                      std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    auto const deadline = std::chrono::steady_clock::now() + timeout;
    ioc.restart();
    while (!done()) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        ioc.run_one_for(std::chrono::milliseconds(10));
        ioc.restart();
    }
    return true;
}

}  // namespace mesa::test
