// Boost.JSON compiled into the fuzz targets (instead of the system
// libboost_json) so that its parser is instrumented: coverage guides the
// fuzzer through it and AddressSanitizer checks it.
#include <boost/json/src.hpp>
