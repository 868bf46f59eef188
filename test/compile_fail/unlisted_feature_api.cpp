// Must NOT compile: reaching the run-time API of a feature the server does not list.
#include <mesa/mesa.hpp>

int main() {
    asio::io_context ioc;
    mesa::basic_server<> server{ioc};
    server.feature<mesa::authentication>().on_authenticate(nullptr);
}
