#include <cstddef>

std::size_t counting_new_calls();
std::size_t counting_delete_calls();
