// mesa-gateway: a Mega-compatible Mesa gateway configured by environment
// variables or options named after them (`mesa-gateway --help` lists them). Without REDIS_URI it runs as a
// single node on the in-memory broker; with it, it joins the Redis cluster.
#include <CLI/CLI.hpp>

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <optional>
#include <string>

#include "config.hpp"
#include "gateway.hpp"
#include "log.hpp"

#if __has_include(<mesa/broker/redis.hpp>)
#include <mesa/broker/redis.hpp>
#include <mesa/broker/redis_tls.hpp>
#define MESA_GATEWAY_HAS_REDIS 1
#endif

namespace {
std::string option_name(std::string name) {
    for (auto& ch : name) ch = ch == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return name;
}

template <class T>
struct tag {
    using type = T;
};
}  // namespace

int main(int argc, char** argv) {
    // Every variable is also an option named after it (--mesa-port for
    // MESA_PORT, --opt=value or --opt value); an option overrides the environment.
    CLI::App app{"mesa-gateway", "mesa-gateway"};
    app.set_help_flag();
    app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // the last one given counts
    bool help = false, version = false;
    app.add_flag("-h,--help", help, "print the settings and exit");
    app.add_flag("--version", version, "print the version and exit");
    std::map<std::string, std::string> given;
    for (auto const& v : gateway::variables()) {
        if (std::strcmp(v.name, "NOTIFY_SOCKET") == 0) continue;  // the service manager's, environment only
        app.add_option("--" + option_name(v.name), given[v.name], v.meaning);
    }
    try {
        app.parse(argc, argv);
    } catch (CLI::ParseError const& e) {
        std::cerr << "mesa-gateway: " << e.what() << " (see mesa-gateway --help)\n";
        return 2;
    }
    if (help) {
        std::cout << gateway::help_text();
        return 0;
    }
    if (version) {
        std::cout << "mesa-gateway " << mesa::version_string << "\n";
        return 0;
    }

    auto parsed = gateway::parse_config([&](char const* name) -> std::optional<std::string> {
        auto it = given.find(name);
        if (it != given.end() && app.count("--" + option_name(name)) > 0) return it->second;
        if (char const* v = std::getenv(name)) return std::string(v);
        return std::nullopt;
    });
    if (!parsed.ok()) {
        for (auto const& e : parsed.errors) std::cerr << "mesa-gateway: invalid configuration: " << e << "\n";
        std::cerr << "mesa-gateway: see mesa-gateway --help\n";
        return 1;
    }
    auto const& cfg = parsed.value;

    // Both transports in this one translation unit; TLS_CERT/TLS_KEY pick one.
    auto run = [&](auto broker_tag, typename decltype(broker_tag)::type::options broker, std::string const& name,
                   std::string const& description) {
        using broker_t = typename decltype(broker_tag)::type;
        if (cfg.tls())
            return gateway::run_gateway<mesa::transport::asio_tls, broker_t>(cfg, std::move(broker), name, description);
        return gateway::run_gateway<mesa::transport::asio_plain, broker_t>(cfg, std::move(broker), name, description);
    };

    if (!cfg.redis()) return run(tag<mesa::broker::memory>{}, {}, "memory", "memory (single node)");

#ifdef MESA_GATEWAY_HAS_REDIS
    mesa::broker::redis::options broker;
    gateway::logger log(cfg);
    broker.on_log = [log](std::string text) { log.warning("redis", "redis: " + text); };
    if (cfg.redis_replicas_to_acknowledge) broker.replicas_to_acknowledge = *cfg.redis_replicas_to_acknowledge;
    broker.replica_timeout = std::chrono::milliseconds(cfg.redis_replica_timeout_ms);
    broker.command_timeout = std::chrono::milliseconds(cfg.redis_command_timeout_ms);
    if (cfg.redis_tls) {
        mesa::broker::redis_tls_options tls;
        tls.ca_file = cfg.redis_tls_ca.value_or("");
        tls.cert_file = cfg.redis_tls_cert.value_or("");
        tls.key_file = cfg.redis_tls_key.value_or("");
        tls.server_name = cfg.redis_tls_server_name.value_or("");
        tls.verify = !cfg.redis_tls_insecure;
        try {
            broker.tls = mesa::broker::redis_tls(tls);
        } catch (std::exception const& e) {
            std::cerr << "mesa-gateway: invalid configuration: " << e.what() << "\n";
            return 1;
        }
    }
    std::string where = cfg.redis_tls ? "redis (TLS)" : "redis";
    if (!cfg.redis_sentinels.empty()) {
        broker.sentinels = cfg.redis_sentinels;
        broker.sentinel_master = cfg.redis_sentinel_master;
        if (cfg.redis_sentinel_password) broker.sentinel_password = *cfg.redis_sentinel_password;
        if (cfg.redis_username) broker.username = *cfg.redis_username;
        if (cfg.redis_password) broker.password = *cfg.redis_password;
        broker.db = cfg.redis_db;
        where += " master '" + cfg.redis_sentinel_master + "' through the sentinels";
        for (std::size_t i = 0; i < cfg.redis_sentinels.size(); ++i) where += (i ? "," : " ") + cfg.redis_sentinels[i];
    } else {
        broker.uri = *cfg.redis_uri;
#ifdef MESA_GATEWAY_CHECKS_REDIS_URI
        where += " at " + mesa::broker::detail::parse_redis_uri(*cfg.redis_uri).describe();  // no credentials
#endif
    }
    if (broker.waits_for_replicas())
        where += ", stores acknowledged by " + (broker.replicas_to_acknowledge
                                                    ? std::to_string(*broker.replicas_to_acknowledge) + " replica(s)"
                                                    : std::string("every replica of the master"));
    return run(tag<mesa::broker::redis>{}, std::move(broker), "redis", where);
#else
    std::cerr << "mesa-gateway: REDIS_URI or REDIS_SENTINELS is set but this build has no Redis broker "
                 "(mesa/broker/redis.hpp)\n";
    return 1;
#endif
}
