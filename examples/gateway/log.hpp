#pragma once
// One line per event on stderr, prefixed with a UTC timestamp (ISO 8601, ms):
//   2024-05-01T12:00:00.123Z mesa-gateway: client #3 authenticated as alice
// Each line is one fwrite, which holds the stream's lock, so lines written by
// several server instances' threads never interleave.
#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>

namespace gateway {

class logger {
public:
    explicit logger(bool enabled) : enabled_(enabled) {}

    bool enabled() const noexcept { return enabled_; }

    /// Writes `text` when logging is on.
    void operator()(std::string const& text) const {
        if (enabled_) write(text);
    }

    /// Writes `text` whatever the setting (start-up, fatal errors).
    static void write(std::string const& text) {
        using namespace std::chrono;
        auto const now = system_clock::now();
        auto const t = system_clock::to_time_t(now);
        auto const ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
        std::tm tm{};
        gmtime_r(&t, &tm);
        char stamp[64];
        std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                      tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
        std::string line = std::string(stamp) + " mesa-gateway: " + text + "\n";
        std::fwrite(line.data(), 1, line.size(), stderr);
        std::fflush(stderr);
    }

private:
    bool enabled_;
};

}  // namespace gateway
