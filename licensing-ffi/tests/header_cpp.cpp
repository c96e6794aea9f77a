// Proves include/licensing.h is C++-clean: compiled with g++ -std=c++17 -Wall -Wextra -Werror
// -pedantic, linked against the library and run by scripts/test-ffi.sh.
#include "licensing.h"

#include <cstdio>
#include <cstring>
#include <memory>

namespace {

// The usual C++ wrapping of a handle: a unique_ptr with the _free function as deleter.
struct ContextDeleter {
    void operator()(lic_context *context) const noexcept { lic_context_free(context); }
};
using Context = std::unique_ptr<lic_context, ContextDeleter>;

}  // namespace

int main() {
    int failed = 0;
    if (std::strcmp(lic_version(), LIC_VERSION_STRING) != 0) {
        std::puts("FAIL: lic_version() differs from LIC_VERSION_STRING");
        failed++;
    }
    lic_context *raw = nullptr;
    lic_result rc = lic_context_new(lic_unix_now(), &raw);
    Context context(raw);
    if (rc != LIC_OK || !context) {
        failed++;
    }
    if (lic_context_set_version(context.get(), "not semver") != LIC_INVALID_ARGUMENT) {
        std::puts("FAIL: a bad version is not LIC_INVALID_ARGUMENT");
        failed++;
    }
    const lic_status status = LIC_STATUS_VALID_IN_GRACE;
    if (!lic_status_is_usable(status) || lic_model_name(LIC_MODEL_NODE_LOCKED)[0] != 'n') {
        failed++;
    }
    std::printf("C++: licensing %s, %s\n", lic_version(), lic_status_name(status));
    std::printf("%d passed, %d failed\n", 4 - failed, failed);
    return failed == 0 ? 0 : 1;
}
