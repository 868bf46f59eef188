// Dispatcher, portal and the portals feature on the memory broker.
#include "../support/memory_server.hpp"

#include <doctest/doctest.h>

using mesa::json::object;
using mesa::test::auth_frame;
using mesa::test::drain;
using mesa::test::memory_server;
using mesa::test::of_type;
using mesa::test::trust_ids;

namespace {

using cluster_server = memory_server<mesa::authentication, mesa::sync, mesa::portals, mesa::middleware>;

}  // namespace

TEST_CASE("a dispatcher reaches clients of the cluster, honours excluding, and disconnects ids") {
    asio::io_context ioc;
    auto hub = std::make_shared<mesa::broker::memory::hub>();
    cluster_server::options o;
    o.namespace_name = "app";
    o.broker.cluster = hub;
    cluster_server s{ioc, o};
    trust_ids(s);
    s.start();
    auto ann = mesa::test::connect_as(s, "ann");
    auto bob = mesa::test::connect_as(s, "bob");
    drain(ioc);

    mesa::dispatcher<mesa::broker::memory>::options d_opts;
    d_opts.namespace_name = "app";
    d_opts.broker.cluster = hub;
    mesa::dispatcher<mesa::broker::memory> d{ioc.get_executor(), d_opts};
    d.dispatch(mesa::message("ALL", {}));
    d.dispatch(mesa::message("BUT_BOB", {}), {"*"}, {"bob"});
    d.dispatch(mesa::message("TO_ANN", {}), {"ann", "bob"}, {"bob"});
    drain(ioc);
    CHECK(of_type(*ann, "ALL").size() == 1);
    CHECK(of_type(*bob, "ALL").size() == 1);
    CHECK(of_type(*ann, "BUT_BOB").size() == 1);
    CHECK(of_type(*bob, "BUT_BOB").empty());
    CHECK(of_type(*ann, "TO_ANN").size() == 1);
    CHECK(of_type(*bob, "TO_ANN").empty());

    mesa::dispatcher<mesa::broker::memory>::options other_ns = d_opts;
    other_ns.namespace_name = "other";
    mesa::dispatcher<mesa::broker::memory> elsewhere{ioc.get_executor(), other_ns};
    elsewhere.dispatch(mesa::message("WRONG_NAMESPACE", {}));
    drain(ioc);
    CHECK(of_type(*ann, "WRONG_NAMESPACE").empty());

    d.disconnect({"bob"});
    drain(ioc);
    CHECK(bob->close_code() == 1000);
    CHECK(ann->open());
}

TEST_CASE("a dispatcher with sync stores for offline ids, and the server redelivers them") {
    asio::io_context ioc;
    auto hub = std::make_shared<mesa::broker::memory::hub>();
    cluster_server::options o;
    o.broker.cluster = hub;
    cluster_server s{ioc, o};
    trust_ids(s);
    s.start();
    mesa::dispatcher<mesa::broker::memory>::options d_opts;
    d_opts.sync = true;
    d_opts.broker.cluster = hub;
    mesa::dispatcher<mesa::broker::memory> d{ioc.get_executor(), d_opts};
    for (int i = 1; i <= 3; ++i) d.dispatch(mesa::message("N", object{{"n", i}}), {"cat"});
    mesa::message ephemeral("TYPING", {});
    ephemeral.sync = false;
    d.dispatch(ephemeral, {"cat"});
    drain(ioc);
    auto cat = s.transport().connect("/");
    cat->send_text(auth_frame("cat"));
    drain(ioc);
    auto got = of_type(*cat, "N");
    REQUIRE(got.size() == 3);
    for (int i = 0; i < 3; ++i) {
        CHECK(got[i].d.at("n") == i + 1);
        CHECK(got[i].s == i + 1);
    }
    CHECK(of_type(*cat, "TYPING").empty());
}

TEST_CASE("portals get every client event, one portal per event, round-robin, following joins and leaves") {
    asio::io_context ioc;
    auto hub = std::make_shared<mesa::broker::memory::hub>();
    using portal_type = mesa::portal<mesa::broker::memory>;
    portal_type::options p_opts;
    p_opts.broker.cluster = hub;
    p_opts.id = "p1";
    portal_type p1{ioc.get_executor(), p_opts};
    p_opts.id = "p2";
    portal_type p2{ioc.get_executor(), p_opts};
    std::vector<std::string> seen1, seen2;
    auto record = [](portal_type& p, std::vector<std::string>& seen) {
        p.on_connection([&seen] { seen.push_back("connection"); });
        p.on_authentication([&seen](auto const& id) { seen.push_back("authentication " + id.value_or("?")); });
        p.on_message(
            [&seen](mesa::message const& m, auto const& id) { seen.push_back(*m.t + " from " + id.value_or("?")); });
        p.on_disconnection([&seen](auto const& id) { seen.push_back("disconnection " + id.value_or("?")); });
    };
    record(p1, seen1);
    record(p2, seen2);
    p1.start();
    drain(ioc);

    cluster_server::options o;
    o.broker.cluster = hub;
    cluster_server s{ioc, o};
    trust_ids(s);
    std::vector<std::string> pool_events;
    s.feature<mesa::middleware>().use([&](cluster_server&) {
        mesa::middleware::handlers<cluster_server> h;
        h.on_portal_join = [&](std::string const& id) { pool_events.push_back("join " + id); };
        h.on_portal_leave = [&](std::string const& id) { pool_events.push_back("leave " + id); };
        return h;
    });
    s.start();
    drain(ioc);
    CHECK(s.feature<mesa::portals>().pool() == std::vector<std::string>{"p1"});  // read from the set

    auto ann = s.transport().connect("/");
    drain(ioc);
    ann->send_text(auth_frame("ann"));
    drain(ioc);
    ann->send_text(mesa::test::frame("HELLO"));
    drain(ioc);
    CHECK(seen1 == std::vector<std::string>{"connection", "authentication ann", "HELLO from ann"});

    p2.start();  // joins live
    drain(ioc);
    CHECK(s.feature<mesa::portals>().pool().size() == 2);
    for (int i = 0; i < 4; ++i) ann->send_text(mesa::test::frame("M"));
    drain(ioc);
    auto count = [](std::vector<std::string> const& v, std::string const& what) {
        return std::count(v.begin(), v.end(), what);
    };
    CHECK(count(seen1, "M from ann") == 2);  // spread evenly
    CHECK(count(seen2, "M from ann") == 2);

    p1.stop();
    drain(ioc);
    CHECK(s.feature<mesa::portals>().pool() == std::vector<std::string>{"p2"});
    ann->close();
    drain(ioc);
    CHECK(seen2.back() == "disconnection ann");
    CHECK(count(seen1, "disconnection ann") == 0);
    CHECK(pool_events == std::vector<std::string>{"join p1", "join p2", "leave p1"});
}

TEST_CASE("a portal with report_all_events handles events addressed to others") {
    asio::io_context ioc;
    auto hub = std::make_shared<mesa::broker::memory::hub>();
    using portal_type = mesa::portal<mesa::broker::memory>;
    portal_type::options p_opts;
    p_opts.broker.cluster = hub;
    p_opts.id = "chosen";
    portal_type chosen{ioc.get_executor(), p_opts};
    p_opts.id = "observer";
    p_opts.report_all_events = true;
    portal_type observer{ioc.get_executor(), p_opts};
    int observed = 0;
    observer.on_message([&](mesa::message const&, auto const&) { ++observed; });
    observer.start();
    drain(ioc);
    // As a Node server publishes it, addressed to another portal.
    observer.broker().publish("portal", R"({"type":"message","message":{"op":0,"d":{},"t":"X"},"portalId":"chosen"})");
    observer.broker().publish("portal", "{not json");
    std::vector<std::string> errors;
    observer.on_error([&](std::string const& e) { errors.push_back(e); });
    drain(ioc);
    CHECK(observed == 1);
    CHECK(errors.size() == 1);
}
