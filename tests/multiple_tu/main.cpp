// Links two translation units that both include <geo/geo.hpp> and
// <geo/json.hpp>. A non-inline function or variable defined in a header shows
// up as a multiple-definition link error; the run checks both halves work.
#include <cstdio>

int geo_multiple_tu_a();
int geo_multiple_tu_b();

int main() {
    const int a = geo_multiple_tu_a();
    const int b = geo_multiple_tu_b();
    if (a != 0 || b != 0) {
        std::printf("multiple_tu: a=%d b=%d\n", a, b);
        return 1;
    }
    return 0;
}
