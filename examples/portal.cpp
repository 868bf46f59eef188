// mesa-portal: a Mesa portal on the command line (mesa::portal on Redis). It
// joins the pool of available portals and prints each client event it
// handles as one JSON line on stdout:
//
//   {"type":"connection"}
//   {"type":"authentication","clientId":"alice"}
//   {"type":"message","clientId":"alice","message":{"op":0,"d":{...},"t":"..."}}
//   {"type":"disconnection","clientId":"alice"}
//
// clientId is absent for clients that had not authenticated. Once it has
// joined the pool it writes `mesa-portal: joined the pool as ID ...` on
// stderr. SIGINT/SIGTERM: leaves the pool, waits for Redis to acknowledge,
// exits 0.
#include <mesa/broker/redis.hpp>
#include <mesa/portal.hpp>

#include "common/tool_cli.hpp"

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>

#include <boost/json.hpp>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

namespace {

std::string const usage =
    std::string(
        "usage: mesa-portal [--redis URI | --sentinels H:P,..] [--namespace NS] [--all-events] [--id ID] [--timeout "
        "MS]\n"
        "       mesa-portal --help | --version\n"
        "\n"
        "Joins the Mesa portal pool on Redis and prints every client event it handles as\n"
        "one JSON line on stdout: {\"type\", \"clientId\"?, \"message\"?}.\n"
        "\n") +
    tools::redis_settings_usage +
    std::string(
        "  --namespace NS  the cluster's namespace\n"
        "  --all-events    print every event, not only those the servers addressed to this portal\n"
        "  --id ID         this portal's id in the pool (default: a random UUID)\n"
        "  --timeout MS    how long to wait for Redis at start and on exit (default 10000)\n"
        "Options take their value as --opt VALUE or --opt=VALUE.\n"
        "SIGINT/SIGTERM: leave the pool and exit 0. Exit 1 when Redis is unreachable, 2 on a bad argument.\n");

void print(boost::json::object const& o) {
    std::cout << boost::json::serialize(o) << std::endl;  // one line, flushed
}

boost::json::object event(char const* type, std::optional<std::string> const& client_id) {
    boost::json::object o;
    o["type"] = type;
    if (client_id) o["clientId"] = *client_id;
    return o;
}

}  // namespace

int main(int argc, char** argv) {
    using portal_t = mesa::portal<mesa::broker::redis>;
    portal_t::options options;
    std::optional<std::string> uri;  // where Redis is, for messages (no credentials)

    tools::command_line cli{"mesa-portal", usage};
    std::optional<std::string> id;
    cli.app.add_option("--namespace", options.namespace_name);
    cli.app.add_flag("--all-events", options.report_all_events);
    cli.app.add_option("--id", id);
    mesa::broker::redis::options const redis_options = cli.parse(argc, argv);
    long const timeout_ms = cli.timeout_ms;
    if (id) {
        if (id->empty()) cli.bad_argument("--id must not be empty");
        options.id = *id;
    }
    uri = tools::describe_redis(redis_options);
    options.broker = redis_options;
    std::string last_log;  // why Redis is unreachable, for the final line
    options.broker.on_log = [&last_log](std::string text) {
        std::cerr << "mesa-portal: redis: " << text << "\n";
        last_log = std::move(text);
    };

    asio::io_context ioc;
    std::unique_ptr<portal_t> p;
    try {
        p = std::make_unique<portal_t>(ioc.get_executor(), options);
    } catch (std::exception const& e) {
        cli.bad_argument(e.what());
    }
    p->on_connection([] { print(event("connection", std::nullopt)); });
    p->on_authentication([](portal_t::client_id const& id) { print(event("authentication", id)); });
    p->on_message([](mesa::message const& m, portal_t::client_id const& id) {
        auto o = event("message", id);
        o["message"] = mesa::to_json(m, mesa::audience::client);
        print(o);
    });
    p->on_disconnection([](portal_t::client_id const& id) { print(event("disconnection", id)); });
    p->on_error([](std::string const& what) { std::cerr << "mesa-portal: " << what << "\n"; });

    int exit_code = 0;
    bool started = false;
    asio::steady_timer timer(ioc);
    auto const deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    auto finish = [&](int code) {
        exit_code = code;
        timer.cancel();
        ioc.stop();
    };

    // Joined once the subscription is confirmed and the pool set holds our id.
    auto const keys = mesa::keys(options.namespace_name);
    auto announce = [&] {
        p->broker().subscribe(
            keys.portal(), [](std::string_view) {},
            [&](std::error_code ec) {
                if (ec) {
                    std::cerr << "mesa-portal: subscription to " << keys.portal() << " failed: " << ec.message()
                              << "\n";
                    return finish(1);
                }
                p->broker().set_contains(
                    keys.available_portals_pool(), {p->id()}, [&](std::error_code ec, std::vector<bool> in) {
                        if (ec || in.empty() || !in[0]) {
                            std::cerr << "mesa-portal: could not join the pool"
                                      << (ec ? ": " + ec.message() : std::string()) << "\n";
                            return finish(1);
                        }
                        timer.cancel();
                        std::cerr << "mesa-portal: joined the pool as " << p->id()
                                  << (options.namespace_name.empty() ? std::string()
                                                                     : " (namespace " + options.namespace_name + ")")
                                  << (options.report_all_events ? ", reporting all events" : "") << std::endl;
                    });
            });
    };

    std::function<void()> wait_connected = [&] {
        if (p->broker().connected()) {
            p->start();
            started = true;
            announce();
            // Bounded: the confirmation must come within the timeout too.
            timer.expires_at(deadline + std::chrono::milliseconds(timeout_ms));
            timer.async_wait([&](std::error_code ec) {
                if (!ec) {
                    std::cerr << "mesa-portal: Redis did not confirm the pool membership in time\n";
                    finish(1);
                }
            });
            return;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            std::cerr << "mesa-portal: Redis at " << *uri << " unreachable within " << timeout_ms << " ms"
                      << (last_log.empty() ? "" : " (last: " + last_log + ")") << "\n";
            return finish(1);
        }
        timer.expires_after(std::chrono::milliseconds(20));
        timer.async_wait([&](std::error_code ec) {
            if (!ec) wait_connected();
        });
    };
    asio::post(ioc, wait_connected);

    asio::signal_set signals(ioc, SIGINT, SIGTERM);
    signals.async_wait([&](std::error_code ec, int) {
        if (ec) return;
        if (!started) return finish(0);  // never joined: nothing to leave
        p->stop();                       // publishes {id, ready:false} and removes the id from the pool
        timer.expires_after(std::chrono::milliseconds(timeout_ms));
        timer.async_wait([&](std::error_code ec) {
            if (!ec) {
                std::cerr << "mesa-portal: Redis did not acknowledge leaving the pool\n";
                finish(1);
            }
        });
        // Replies come in order: this one follows the PUBLISH and SREM.
        p->broker().counter_get(keys.connected_clients_count(), [&](std::error_code ec, std::int64_t) {
            if (ec)
                std::cerr << "mesa-portal: leaving the pool not confirmed: " << ec.message() << "\n";
            else
                std::cerr << "mesa-portal: left the pool\n";
            finish(ec ? 1 : 0);
        });
    });

    auto work = asio::make_work_guard(ioc);
    ioc.run();
    p.reset();
    return exit_code;
}
