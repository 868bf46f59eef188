#pragma once
// The command line every tool (mesa-dispatcher, mesa-portal) shares: CLI11
// set up the same way (the last of a repeated option counts), -h/--help,
// --version, the Redis settings (redis_settings.hpp) and --timeout MS, and
// exit status 2 with the usage for a bad argument.
//
//   tools::command_line cli{"mesa-portal", usage};
//   cli.app.add_option("--id", id);                       // the tool's own options
//   mesa::broker::redis::options redis = cli.parse(argc, argv);
//   if (id && id->empty()) cli.bad_argument("--id must not be empty");
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>

#include <mesa/version.hpp>

#include <CLI/CLI.hpp>

#include "redis_settings.hpp"

namespace tools {

class command_line {
public:
    CLI::App app;
    long timeout_ms = 10000;  // --timeout: 1 to 3 600 000

    command_line(std::string name, std::string usage)
        : app{name, name}, name_(std::move(name)), usage_(std::move(usage)) {
        app.set_help_flag();
        app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
        app.add_flag("-h,--help", help_);
        app.add_flag("--version", version_);
        app.add_option("--timeout", timeout_text_);
        add_redis_options(app, redis_);
    }

    /// Prints "name: why" and the usage on stderr and exits with status 2.
    [[noreturn]] void bad_argument(std::string const& why) const {
        std::cerr << name_ << ": " << why << "\n" << usage_;
        std::exit(2);
    }

    /// Parses the command line: --help and --version print and exit 0, a
    /// bad argument exits 2 (bad_argument). Returns the Redis options from
    /// the flags and the REDIS_* variables, which must name a Redis.
    mesa::broker::redis::options parse(int argc, char** argv) {
        try {
            app.parse(argc, argv);
        } catch (CLI::ParseError const& e) {
            bad_argument(e.what());
        }
        if (help_) {
            std::cout << usage_;
            std::exit(0);
        }
        if (version_) {
            std::cout << name_ << " " << mesa::version_string << "\n";
            std::exit(0);
        }
        if (timeout_text_) {
            char* end = nullptr;
            timeout_ms = std::strtol(timeout_text_->c_str(), &end, 10);
            if (timeout_text_->empty() || *end || timeout_ms < 1 || timeout_ms > 3600000)
                bad_argument("--timeout must be a number of milliseconds from 1 to 3600000");
        }
        mesa::broker::redis::options redis;
        try {
            require_redis_settings(redis_, redis);
        } catch (std::exception const& e) {
            bad_argument(e.what());
        }
        return redis;
    }

private:
    std::string name_;
    std::string usage_;
    bool help_ = false;
    bool version_ = false;
    std::optional<std::string> timeout_text_;
    redis_flags redis_;
};

}  // namespace tools
