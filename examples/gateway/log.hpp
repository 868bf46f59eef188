#pragma once
// The gateway's log on stderr, one line per event, as text (LOG_FORMAT=text)
//   2024-05-01T12:00:00.123Z mesa-gateway: client #3 authenticated as alice
// or as one JSON object per line (LOG_FORMAT=json)
//   {"time":"2024-05-01T12:00:00.123Z","level":"info","event":"authenticated","message":"client #3
//   ...","client":3,"id":"alice"}
// Events below LOG_LEVEL are left out; ENABLE_LOGGING=false leaves out the
// per-client events (connections, authentications, disconnections, refusals).
// Each line is one fwrite, which holds the stream's lock, so lines written by
// several server instances' threads never interleave.
//
//   gateway::logger log(cfg);
//   log.info("listening", "listening on port 4500", {{"port", 4500}});
#include <boost/json.hpp>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>

#include "config.hpp"

namespace gateway {

inline char const* level_name(log_level l) noexcept {
    switch (l) {
        case log_level::debug:
            return "debug";
        case log_level::info:
            return "info";
        case log_level::warning:
            return "warning";
        case log_level::error:
            return "error";
    }
    return "info";
}

class logger {
public:
    explicit logger(bool clients = true, log_format format = log_format::text, log_level least = log_level::info)
        : clients_(clients), format_(format), least_(least) {}
    explicit logger(config const& c) : logger(c.enable_logging, c.log_format, c.log_level) {}

    /// True when per-client events are logged (ENABLE_LOGGING) at info level.
    bool enabled() const noexcept { return clients_ && logs(log_level::info); }
    bool logs(log_level l) const noexcept { return l >= least_; }

    /// A per-client event: written when ENABLE_LOGGING is on and `l` reaches LOG_LEVEL.
    void client(log_level l, char const* event, std::string const& text, boost::json::object fields = {}) const {
        if (clients_) write(l, event, text, std::move(fields));
    }

    /// Any other event (start-up, broker, shutdown): written when `l` reaches LOG_LEVEL.
    void write(log_level l, char const* event, std::string const& text, boost::json::object fields = {}) const {
        if (logs(l)) emit(l, event, text, std::move(fields));
    }

    void debug(char const* event, std::string const& text, boost::json::object fields = {}) const {
        write(log_level::debug, event, text, std::move(fields));
    }
    void info(char const* event, std::string const& text, boost::json::object fields = {}) const {
        write(log_level::info, event, text, std::move(fields));
    }
    void warning(char const* event, std::string const& text, boost::json::object fields = {}) const {
        write(log_level::warning, event, text, std::move(fields));
    }
    void error(char const* event, std::string const& text, boost::json::object fields = {}) const {
        write(log_level::error, event, text, std::move(fields));
    }

    /// Written whatever LOG_LEVEL says (the start-up line operators and tests read the port from).
    void always(char const* event, std::string const& text, boost::json::object fields = {}) const {
        emit(log_level::info, event, text, std::move(fields));
    }

private:
    void emit(log_level l, char const* event, std::string const& text, boost::json::object fields) const {
        std::string line;
        if (format_ == log_format::json) {
            boost::json::object o;
            o["time"] = now();
            o["level"] = level_name(l);
            o["event"] = event;
            o["message"] = text;
            for (auto& f : fields) o[f.key()] = std::move(f.value());
            line = boost::json::serialize(o) + "\n";
        } else {
            line = now() + " mesa-gateway: " + text + "\n";
        }
        std::fwrite(line.data(), 1, line.size(), stderr);
        std::fflush(stderr);
    }

    static std::string now() {
        using namespace std::chrono;
        auto const t_now = system_clock::now();
        auto const t = system_clock::to_time_t(t_now);
        auto const ms = duration_cast<milliseconds>(t_now.time_since_epoch()).count() % 1000;
        std::tm tm{};
        gmtime_r(&t, &tm);
        char stamp[64];
        std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                      tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
        return stamp;
    }

    bool clients_;
    log_format format_;
    log_level least_;
};

}  // namespace gateway
