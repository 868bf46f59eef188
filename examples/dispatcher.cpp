// mesa-dispatcher: sends messages to the clients of a Mesa cluster on Redis
// (our servers and Node Mesa servers alike) from the command line, with
// mesa::dispatcher<mesa::broker::redis>.
//
//   echo 'NEW_MESSAGE {"text":"hi"}' | mesa-dispatcher --redis redis://127.0.0.1:6379 --to alice,bob
//   echo '{"op":0,"d":{"n":1},"t":"X","o":{"sync":false}}' | mesa-dispatcher --redis ... --sync --to zed
//   mesa-dispatcher --redis ... --disconnect alice
//
// One message per stdin line: `TYPE` or `TYPE {json data}`, or a whole
// message object `{"op"?, "d"?, "t"?, "o"?}` (op defaults to 0). Empty lines
// and lines starting with '#' are skipped. Nothing is sent before Redis is
// connected; the tool exits 0 once Redis has acknowledged everything it sent.
#include <mesa/broker/redis.hpp>
#include <mesa/dispatcher.hpp>
#include <mesa/parse.hpp>

#include "common/tool_cli.hpp"

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

std::string const usage =
    std::string(
        "usage: mesa-dispatcher [--redis URI | --sentinels H:P,..] [--namespace NS] [--sync] [--to id,id | --all]\n"
        "                       [--exclude id,id] [--max-backlog N] [--timeout MS] [--quiet]\n"
        "       mesa-dispatcher [--redis URI] [--namespace NS] --disconnect id,id [--timeout MS]\n"
        "       mesa-dispatcher --help | --version\n"
        "\n"
        "Reads one message per stdin line and dispatches it to the Mesa cluster on Redis:\n"
        "  TYPE                     an op 0 message of type TYPE with d = {}\n"
        "  TYPE {\"k\": \"v\"}          an op 0 message of type TYPE with that data\n"
        "  {\"op\":0,\"d\":{..},\"t\":..,\"o\":{\"sync\":false}}   a whole message (op defaults to 0)\n"
        "Empty lines and lines starting with '#' are skipped.\n"
        "\n") +
    tools::redis_settings_usage +
    std::string(
        "  --namespace NS    the cluster's namespace (Redis names get the suffix _NS)\n"
        "  --sync            store messages for offline ids (undelivered_messages) instead of sending\n"
        "  --to id,id        send to these ids only (default: --all, every client)\n"
        "  --all             send to every client\n"
        "  --exclude id,id   leave these ids out\n"
        "  --disconnect id,id  close the connections of these ids (op 5 DISCONNECT_CLIENT); stdin is not read\n"
        "  --max-backlog N   with --sync: most messages kept per offline id, oldest dropped first (default 1000; 0: no "
        "limit)\n"
        "  --timeout MS      how long to wait for Redis, at start and for the final acknowledgement (default 10000)\n"
        "  --quiet           no summary line on stderr\n"
        "Options take their value as --opt VALUE or --opt=VALUE.\n"
        "Exit status: 0 when everything was written to Redis, 1 on a failure, 2 on a bad argument.\n");

std::vector<std::string> split_ids(std::string const& text) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start <= text.size()) {
        auto const comma = text.find(',', start);
        auto const item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (!item.empty()) out.push_back(item);
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return out;
}

/// One stdin line as a message, or why it is not one.
bool parse_line(std::string const& raw, mesa::message& out, std::string& why) {
    std::string line = raw;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
    std::size_t first = line.find_first_not_of(" \t");
    line = first == std::string::npos ? std::string() : line.substr(first);
    if (line.empty()) {
        why = "empty line";
        return false;
    }
    if (line.front() == '{') {
        boost::system::error_code ec;
        boost::json::parse_options options;
        options.max_depth = mesa::max_json_depth;
        auto v = boost::json::parse(line, ec, boost::json::storage_ptr(), options);
        if (ec) {
            why = "invalid JSON: " + ec.message();
            return false;
        }
        if (v.is_object() && !v.get_object().contains("op")) v.get_object()["op"] = mesa::opcode::dispatch;
        auto parsed = mesa::to_message(std::move(v));
        if (!parsed) {
            why = parsed.error().reason;
            return false;
        }
        out = std::move(parsed.value());
        if (out.s) {
            why = "\"s\" is set by servers on redelivery, not by senders";
            return false;
        }
        return true;
    }
    auto const space = line.find_first_of(" \t");
    std::string type = line.substr(0, space);
    boost::json::object data;
    if (space != std::string::npos) {
        auto const rest = line.substr(space + 1);
        boost::system::error_code ec;
        boost::json::parse_options options;
        options.max_depth = mesa::max_json_depth;
        auto v = boost::json::parse(rest, ec, boost::json::storage_ptr(), options);
        if (ec || !v.is_object()) {
            why = "the data after the type must be a JSON object";
            return false;
        }
        data = std::move(v.get_object());
    }
    out = mesa::message(std::move(type), std::move(data));
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    std::optional<std::string> uri;  // where Redis is, for messages (no credentials)
    std::string namespace_name;
    bool sync = false, quiet = false;
    std::optional<std::vector<std::string>> to;
    bool all = false;
    std::vector<std::string> exclude;
    std::optional<std::vector<std::string>> disconnect;
    long max_backlog = 1000;

    tools::command_line cli{"mesa-dispatcher", usage};
    auto& app = cli.app;
    std::optional<std::string> to_text, exclude_text, disconnect_text, backlog_text;
    app.add_option("--namespace", namespace_name);
    app.add_flag("--sync", sync);
    app.add_flag("--quiet", quiet);
    app.add_option("--to", to_text);
    app.add_flag("--all", all);
    app.add_option("--exclude", exclude_text);
    app.add_option("--disconnect", disconnect_text);
    app.add_option("--max-backlog", backlog_text);
    mesa::broker::redis::options const redis_options = cli.parse(argc, argv);
    long const timeout_ms = cli.timeout_ms;
    if (to_text) {
        auto ids = split_ids(*to_text);
        if (ids.empty()) cli.bad_argument("--to needs at least one id");
        for (auto const& id : ids)
            if (id == "*") cli.bad_argument("--to takes ids; use --all for everyone");
        to = std::move(ids);
    }
    if (exclude_text) {
        exclude = split_ids(*exclude_text);
        if (exclude.empty()) cli.bad_argument("--exclude needs at least one id");
    }
    if (disconnect_text) {
        auto ids = split_ids(*disconnect_text);
        if (ids.empty()) cli.bad_argument("--disconnect needs at least one id");
        disconnect = std::move(ids);
    }
    if (backlog_text) {
        char* end = nullptr;
        max_backlog = std::strtol(backlog_text->c_str(), &end, 10);
        if (backlog_text->empty() || *end || max_backlog < 0) cli.bad_argument("--max-backlog must be a number >= 0");
    }
    uri = tools::describe_redis(redis_options);
    if (to && all) cli.bad_argument("--to and --all exclude each other");
    if (disconnect && (to || all || sync || !exclude.empty()))
        cli.bad_argument("--disconnect takes no --to/--all/--sync/--exclude");

    asio::io_context ioc;
    using dispatcher_t = mesa::dispatcher<mesa::broker::redis>;
    dispatcher_t::options options;
    options.namespace_name = namespace_name;
    options.sync = sync;
    options.max_backlog = static_cast<std::size_t>(max_backlog);
    options.broker = redis_options;
    options.broker.connect_timeout = std::chrono::milliseconds(std::min<long>(timeout_ms, 5000));
    options.broker.max_pending_commands = 1u << 20;
    bool failed = false;
    bool started = false;  // set once Redis is connected and sending began
    std::string last_log;  // why Redis is unreachable, for the final line
    options.broker.on_log = [&](std::string text) {
        last_log = text;
        // Publications or backlog entries that could not be written are lost: a failure.
        if (started && (text.find("failed") != std::string::npos || text.find("dropped") != std::string::npos))
            failed = true;
        std::cerr << "mesa-dispatcher: redis: " << text << "\n";
    };

    std::unique_ptr<dispatcher_t> d;
    try {
        d = std::make_unique<dispatcher_t>(ioc.get_executor(), options);
    } catch (std::exception const& e) {
        cli.bad_argument(e.what());
    }
    d->on_error([&](std::string const& what) {
        failed = true;
        std::cerr << "mesa-dispatcher: " << what << "\n";
    });

    // stdin is read on its own thread; lines reach the io_context in order.
    std::deque<std::optional<std::string>> pending;  // nullopt: end of input
    bool connected = false;
    std::size_t line_number = 0, sent = 0, bad_lines = 0;
    bool input_done = false;
    int exit_code = 0;
    asio::steady_timer timer(ioc);
    auto const deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);

    std::vector<std::string> recipients = to ? *to : std::vector<std::string>{"*"};

    std::function<void(int)> flush;
    auto finish = [&](int code) {
        exit_code = code;
        timer.cancel();
        ioc.stop();
    };
    // Each round trip runs after the replies (and follow-up commands, like the
    // backlog appends of a sync send) of everything issued before it.
    flush = [&](int rounds) {
        timer.expires_at(std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms));
        timer.async_wait([&](std::error_code ec) {
            if (ec) return;
            std::cerr << "mesa-dispatcher: Redis did not acknowledge the messages within " << timeout_ms << " ms\n";
            finish(1);
        });
        d->broker().counter_get(d->keys().connected_clients_count(), [&, rounds](std::error_code ec, std::int64_t) {
            if (ec) {
                std::cerr << "mesa-dispatcher: cannot confirm the messages were written: " << ec.message() << "\n";
                finish(1);
                return;
            }
            if (rounds > 1) return flush(rounds - 1);
            if (!quiet) {
                if (disconnect)
                    std::cerr << "mesa-dispatcher: disconnect sent for " << disconnect->size() << " id(s)\n";
                else
                    std::cerr << "mesa-dispatcher: " << sent << " message(s) dispatched\n";
            }
            finish(failed || bad_lines ? 1 : 0);
        });
    };

    auto drain = [&] {
        if (!connected) return;
        while (!pending.empty()) {
            auto item = std::move(pending.front());
            pending.pop_front();
            if (!item) {
                input_done = true;
                flush(3);
                return;
            }
            ++line_number;
            auto const first = item->find_first_not_of(" \t\r");
            if (first == std::string::npos || (*item)[first] == '#') continue;
            mesa::message m;
            std::string why;
            if (!parse_line(*item, m, why)) {
                ++bad_lines;
                std::cerr << "mesa-dispatcher: stdin line " << line_number << " skipped: " << why << "\n";
                continue;
            }
            d->dispatch(m, recipients, exclude);
            ++sent;
        }
    };

    // Waits for both connections (commands, subscriptions) before the first send.
    std::function<void()> wait_connected = [&] {
        if (d->broker().connected()) {
            connected = true;
            started = true;
            if (disconnect) {
                d->disconnect(*disconnect);
                flush(2);
                return;
            }
            drain();
            return;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            std::cerr << "mesa-dispatcher: Redis at " << *uri << " unreachable within " << timeout_ms << " ms"
                      << (last_log.empty() ? "" : " (last: " + last_log + ")") << "\n";
            finish(1);
            return;
        }
        timer.expires_after(std::chrono::milliseconds(20));
        timer.async_wait([&](std::error_code ec) {
            if (!ec) wait_connected();
        });
    };
    asio::post(ioc, wait_connected);

    std::thread reader;
    if (!disconnect) {
        reader = std::thread([&ioc, &pending, &drain, &input_done] {
            std::string line;
            for (;;) {
                std::optional<std::string> item;
                if (std::getline(std::cin, line)) item = line;
                bool const end = !item;
                asio::post(ioc, [&pending, &drain, &input_done, item = std::move(item)]() mutable {
                    if (input_done) return;
                    pending.push_back(std::move(item));
                    drain();
                });
                if (end) return;
            }
        });
        reader.detach();  // may still be blocked on stdin when Redis is unreachable
    }

    auto work = asio::make_work_guard(ioc);
    ioc.run();
    std::cout.flush();
    // The reader thread may be blocked in getline: leave without joining it.
    std::_Exit(exit_code);
}
