// Must NOT compile: configuring a feature the server does not list.
#include <mesa/mesa.hpp>

int main() {
    mesa::basic_server<mesa::reconnect>::options options;
    options.feature<mesa::heartbeat>().interval = std::chrono::seconds(1);
}
