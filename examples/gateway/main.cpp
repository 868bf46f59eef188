// mesa-gateway: a Mega-compatible Mesa gateway configured by environment
// variables (`mesa-gateway --help` lists them). Without REDIS_URI it runs as a
// single node on the in-memory broker; with it, it joins the Redis cluster.
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>

#include "config.hpp"
#include "gateway.hpp"
#include "log.hpp"

#if __has_include(<mesa/broker/redis.hpp>)
#include <mesa/broker/redis.hpp>
#define MESA_GATEWAY_HAS_REDIS 1
#endif

namespace {
template <class T>
struct tag {
    using type = T;
};
}  // namespace

int main(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
            std::cout << gateway::help_text();
            return 0;
        }
        if (std::strcmp(argv[i], "--version") == 0) {
            std::cout << "mesa-gateway " << mesa::version_string << "\n";
            return 0;
        }
        std::cerr << "mesa-gateway: unknown argument '" << argv[i]
                  << "' (configuration comes from the environment; see --help)\n";
        return 2;
    }

    auto parsed = gateway::parse_config([](char const* name) -> std::optional<std::string> {
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
            return gateway::run_gateway<mesa::transport::websocketpp_tls, broker_t>(cfg, std::move(broker), name,
                                                                                    description);
        return gateway::run_gateway<mesa::transport::websocketpp_plain, broker_t>(cfg, std::move(broker), name,
                                                                                  description);
    };

    if (!cfg.redis_uri) return run(tag<mesa::broker::memory>{}, {}, "memory", "memory (single node)");

#ifdef MESA_GATEWAY_HAS_REDIS
    mesa::broker::redis::options broker;
    broker.uri = *cfg.redis_uri;
    gateway::logger log(cfg.enable_logging);
    broker.on_log = [log](std::string text) { log("redis: " + text); };
    std::string where = "redis";
#ifdef MESA_GATEWAY_CHECKS_REDIS_URI
    where += " at " + mesa::broker::detail::parse_redis_uri(*cfg.redis_uri).describe();  // no credentials
#endif
    return run(tag<mesa::broker::redis>{}, std::move(broker), "redis", where);
#else
    std::cerr << "mesa-gateway: REDIS_URI is set but this build has no Redis broker (mesa/broker/redis.hpp)\n";
    return 1;
#endif
}
