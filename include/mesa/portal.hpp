#pragma once
// mesa::portal: handles client events of a Mesa cluster in another process
// (the reference's Portal). It joins the pool of available portals on start
// and leaves it on stop; servers with the portals feature send each event to
// one portal of the pool, or to all with report_all_events.
//
//   mesa::portal<mesa::broker::redis> p{ioc.get_executor(), opts};
//   p.on_message([](mesa::message const& m, std::optional<std::string> const& client_id) { ... });
//   p.start();
//
// Thread-safety: use it on its executor's thread.
#include <mesa/detail/config.hpp>  // first: the macros Asio and websocketpp need

#include <asio/any_io_executor.hpp>

#include <functional>
#include <optional>
#include <string>
#include <utility>

#include <mesa/detail/uuid.hpp>
#include <mesa/keys.hpp>
#include <mesa/message.hpp>
#include <mesa/portal_event.hpp>

namespace mesa {

template <class Broker>
class portal {
public:
    struct options {
        std::string namespace_name;
        bool report_all_events = false;  // handle every event, not only those addressed to this portal
        std::string id = detail::uuid_v4();
        typename Broker::options broker{};
    };
    using client_id = std::optional<std::string>;

    explicit portal(asio::any_io_executor executor, options opts = {})
        : options_(std::move(opts)), keys_(options_.namespace_name), broker_(std::move(executor), options_.broker) {}

    portal(portal const&) = delete;
    portal& operator=(portal const&) = delete;
    ~portal() { stop(); }

    void on_connection(std::function<void()> h) { on_connection_ = std::move(h); }
    void on_authentication(std::function<void(client_id const&)> h) { on_authentication_ = std::move(h); }
    void on_message(std::function<void(message const&, client_id const&)> h) { on_message_ = std::move(h); }
    void on_disconnection(std::function<void(client_id const&)> h) { on_disconnection_ = std::move(h); }
    void on_error(std::function<void(std::string const&)> h) { on_error_ = std::move(h); }

    /// Subscribes to the portal channel and joins the pool.
    void start() {
        if (started_) return;
        started_ = true;
        broker_.subscribe(keys_.portal(), [this](std::string_view payload) { received(payload); });
        broker_.on_restored([this] {
            if (started_) join();  // Redis may have restarted empty
        });
        join();
    }

    /// Leaves the pool (servers stop choosing this portal).
    void stop() {
        if (!started_) return;
        started_ = false;
        broker_.publish(keys_.available_portals_pool(), serialize_portal_presence(options_.id, false));
        broker_.set_remove(keys_.available_portals_pool(), options_.id);
    }

    std::string const& id() const noexcept { return options_.id; }
    Broker& broker() noexcept { return broker_; }

private:
    void join() {
        broker_.set_add(keys_.available_portals_pool(), options_.id);
        broker_.publish(keys_.available_portals_pool(), serialize_portal_presence(options_.id, true));
    }

    void received(std::string_view payload) {
        if (!started_) return;
        portal_event e;
        std::string why;
        if (!parse_portal_event(payload, e, why)) {
            if (on_error_) on_error_(why);
            return;
        }
        if (e.portal_id != options_.id && !options_.report_all_events) return;
        if (e.type == "connection") {
            if (on_connection_) on_connection_();
        } else if (e.type == "authentication") {
            if (on_authentication_) on_authentication_(e.client_id);
        } else if (e.type == "message") {
            if (on_message_ && e.msg) on_message_(*e.msg, e.client_id);
        } else if (e.type == "disconnection") {
            if (on_disconnection_) on_disconnection_(e.client_id);
        } else if (on_error_) {
            on_error_("unknown portal event type \"" + e.type + "\"");
        }
    }

    options options_;
    mesa::keys keys_;
    Broker broker_;
    bool started_ = false;
    std::function<void()> on_connection_;
    std::function<void(client_id const&)> on_authentication_;
    std::function<void(message const&, client_id const&)> on_message_;
    std::function<void(client_id const&)> on_disconnection_;
    std::function<void(std::string const&)> on_error_;
};

}  // namespace mesa
